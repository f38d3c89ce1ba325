"""Infrastructure: settings, the database, ids, the event bus, the outbox relay,
background work. Imports nothing of the layers above."""
