# The two quick-start commands (`make run`, `make test`) and what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint broker clean demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Run the agent for real: SQLite in data/, the broker on 127.0.0.1:1883 (started if none answers).
run: $(STAMP)
	scripts/dev-broker.sh
	$(BIN)/factory-agent run

# The whole test suite: unit tests and integration tests against a private Mosquitto
# (and PostgreSQL when AGENT_TEST_POSTGRES_URL is set).
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check agent tests bench
	$(BIN)/ruff format --check agent tests bench
	$(BIN)/mypy --strict agent
	$(BIN)/lint-imports  # the import contract in pyproject.toml ([tool.importlinter])
	$(BIN)/python scripts/check_clock.py  # no core module reads the clock (AST check)

broker:
	scripts/dev-broker.sh

# The agent and the simulator at an hour a second: decisions appear within a minute.
demo: $(STAMP)
	scripts/dev-broker.sh
	$(BIN)/python scripts/demo.py

clean:
	rm -rf $(VENV) data .pytest_cache
