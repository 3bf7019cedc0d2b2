# portkit: the two commands of the quick start, and the pieces they are made of.
#   make demo   create .venv, install portkit, run the whole system end to end
#   make test   create .venv with the test extras, install the system packages the tests
#               talk to (as root), then lint, type-check, check the layers and run every
#               test with coverage
#   make test-pythons   the tests again on Python 3.12 and 3.13, where this machine has them
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LINT_PATHS := $(wildcard src tests bench lab scripts)

.PHONY: demo test lint typecheck layers pytest test-pythons system-deps venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# An editable install leaves out data files, so the manual pages are copied into the
# environment's share/man/man1 by hand (`man portkit-scan` with the venv's bin on PATH).
MAN_PAGES := $(wildcard man/*.1)

$(VENV)/.runtime: pyproject.toml $(MAN_PAGES) | $(BIN)/python
	$(BIN)/pip install -q -e .
	mkdir -p $(VENV)/share/man/man1 && cp $(MAN_PAGES) $(VENV)/share/man/man1/
	touch $@

$(VENV)/.test: pyproject.toml $(MAN_PAGES) | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	mkdir -p $(VENV)/share/man/man1 && cp $(MAN_PAGES) $(VENV)/share/man/man1/
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

# The other Pythons the package declares (pyproject classifiers), where they are installed:
# pyenv's builds, which are part of this machine. None is ever downloaded; a missing one is
# named and left out, or is an error with PYTHONS_REQUIRED=1. Each gets its own
# virtualenv (.venv-3.12, ...) with the test extras. QUICK=1 runs the fast subset CI runs
# (about 30 s a Python): the sans-io and client tests, without lab, slow or CLI tests.
OTHER_PYTHONS ?= 3.12 3.13
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
PYTHONS_REQUIRED ?=
QUICK ?=
QUICK_TESTS := -m "not lab and not slow" tests/registry tests/endpoint tests/proto \
  tests/client tests/test_errors.py tests/test_exported_members.py tests/test_version.py \
  tests/test_network_errors.py tests/test_cli_frame.py

test-pythons: $(if $(QUICK),,system-deps)
	@for version in $(OTHER_PYTHONS); do \
	  python=$$(ls -d $(PYENV_ROOT)/versions/$$version.*/bin/python$$version 2>/dev/null | tail -n 1); \
	  if [ -z "$$python" ]; then \
	    echo "python $$version is not installed here: its tests are not run"; \
	    [ -z "$(PYTHONS_REQUIRED)" ] || exit 1; continue; \
	  fi; \
	  venv=.venv-$$version; \
	  echo "== tests on $$($$python --version) ($$venv)"; \
	  [ -x $$venv/bin/python ] || $$python -m venv $$venv || exit 1; \
	  $$venv/bin/python -m pip install -q -e '.[test]' || exit 1; \
	  $$venv/bin/pytest -q -p no:cacheprovider $(if $(QUICK),$(QUICK_TESTS)) || exit 1; \
	done

# CI (.ci/run) runs `make test-pythons QUICK=1` after test: see
# CONTRIBUTING.md "Set up".
test: lint typecheck layers pytest

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache .coverage .import_linter_cache
