PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck schema schema-check bench ci clean

# The venv is rebuilt only when the lock file changes.
$(STAMP): requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m commands.run

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# schema.graphql is generated from the code; CI fails when the committed one is stale.
schema: install
	$(BIN)/python -m schema.export > schema.graphql

schema-check: install
	$(BIN)/python -m schema.export | diff -u schema.graphql - \
		|| (echo "schema.graphql is stale: run 'make schema'" && exit 1)

bench: install
	$(BIN)/python bench/availability.py
	$(BIN)/python bench/booking.py
	$(BIN)/python bench/subscriptions.py

lock:
	$(BIN)/uv pip compile requirements.in --no-emit-index-url --no-emit-find-links \
		--no-header --no-annotate -q -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
