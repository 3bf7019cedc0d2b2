# portkit: the two commands of the quick start, and the pieces they are made of.
#   make demo   create .venv, install portkit, run the whole system end to end
#   make test   create .venv with the test extras, install the system packages the tests
#               talk to (as root), then lint, type-check, check the layers and run every
#               test with coverage
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LINT_PATHS := $(wildcard src tests bench lab scripts)

.PHONY: demo test lint typecheck layers pytest system-deps venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.runtime

venv: $(VENV)/.runtime

demo: $(VENV)/.runtime
	$(BIN)/portkit demo

system-deps:
	scripts/install-system-deps.sh

lint: $(VENV)/.test
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)

typecheck: $(VENV)/.test
	$(BIN)/mypy src tests

# The import contracts in pyproject.toml ([tool.importlinter]): the layer order.
layers: $(VENV)/.test
	$(BIN)/lint-imports --no-cache

# Coverage of the code the test process runs (the figure in README "Tests"); code that
# runs only in child processes (`portkit` commands run by the CLI tests) is not counted.
pytest: $(VENV)/.test system-deps
	$(BIN)/pytest --cov=portkit --cov-report=term:skip-covered

test: lint typecheck layers pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage .import_linter_cache
