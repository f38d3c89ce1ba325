"""Developer commands: `python -m commands.run` (make run), `python -m commands.seed`."""
