# The two commands a newcomer needs: `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install up test test-unit chaos bench bench-api bench-pods clean compose-up compose-down compose-test

$(BIN)/raftkube: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Bytecode for our own packages: a master restarts faster without compiling them (where PYTHONDONTWRITEBYTECODE
# is set, nothing else writes it). Unchanged files are skipped.
install: $(BIN)/raftkube
	$(BIN)/python -m compileall -q -j 0 kvstore api controllers node raftkube

up: install
	$(BIN)/raftkube up $(ARGS)

test: install
	$(BIN)/lint-imports
	$(BIN)/ruff check --select F,E9 --quiet kvstore api controllers node raftkube tests bench
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The pure cores (state machine, selectors, patches, controllers' decisions, checkers): seconds, no processes.
test-unit: install
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

# A Jepsen-style campaign on a fresh cluster: ARGS="--seconds 300 --masters 5" for a longer one.
chaos: install
	$(BIN)/raftkube campaign $(ARGS)

bench: install
	$(BIN)/python bench/kv.py $(ARGS)

bench-api: install
	$(BIN)/python bench/api.py $(ARGS)

bench-pods: install
	$(BIN)/python bench/pods.py $(ARGS)

# The same cluster in containers (README, "The cluster in containers"): Docker and root for the stand-in images.
compose-up: install
	compose/up.sh

compose-down:
	docker compose unpause >/dev/null 2>&1 || true
	docker compose down --volumes --remove-orphans --timeout 5

compose-test: install
	$(BIN)/python -m pytest -q tests/compose $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .raftkube .pytest_cache
