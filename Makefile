# The two set-up commands of the README: `make verify` (the main job) and `make test` (the tests).
# Both install the pinned environment into .venv first when it is missing or out of date.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install verify test lint format

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

# The main job: generate on the shipped tiny model, offline, and print the PNG written.
verify: install
	$(BIN)/serena --data-dir build/main-job txt2img --prompt "a lighthouse on a cliff at dusk" \
		--seed 1234 --steps 10 --sampler DDIM --width 64 --height 64

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest --cov --cov-report=term --cov-report=xml:build/coverage.xml --junitxml=build/junit.xml

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
