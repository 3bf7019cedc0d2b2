# portkit: the two commands of the quick start, and the pieces they are made of.
#   make demo   create .venv, install portkit, run the whole system end to end
#   make test   create .venv with the test extras, install the system packages the tests
#               talk to (as root), then lint, type-check and run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LINT_PATHS := $(wildcard src tests bench lab scripts)

.PHONY: demo test lint typecheck pytest system-deps venv clean

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

pytest: $(VENV)/.test system-deps
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
