# Two commands matter: `make demo` and `make test`. Everything else is what they need.
# Two environments: Django 5.2 LTS, and the newest Django on the newest Python 3.12+ this
# machine has (Django 6 needs 3.12+).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Django 5.2 runs on the default python3 when it is 3.10 or newer, else the newest Python found.
PY_LTS ?= $(shell python3 -c 'import sys; print(sys.executable if sys.version_info >= (3, 10) else "")' 2>/dev/null || true)
ifeq ($(PY_LTS),)
PY_LTS := $(shell scripts/find-python 3.10)
endif
PY_NEW ?= $(shell scripts/find-python 3.12)
VENV_LTS := .venv/django52
VENV_NEW := .venv/django-latest
EXTRAS := .[postgres,mysql,health,prometheus,test,lint,docs]
# Test processes side by side: most tests wait on real servers and processes, not on the CPU.
JOBS ?= 2
# After a pytest step: exit code 5 (no test selected) is fine only when PYTEST_ARGS narrowed it.
NONE_SELECTED = { code=$$?; test $$code -eq 5 && test -n "$(PYTEST_ARGS)"; }

.PHONY: help demo test lint typecheck docs package test-lts test-new system-deps venvs clean

help:
	@echo "make demo   set up and run automigrate on the example project (SQLite)"
	@echo "make test   set up and run lint, type checks, the docs build and the tests on Django 5.2 and the newest Django"

system-deps:
	@scripts/install-system-deps

$(VENV_LTS)/.installed: pyproject.toml | system-deps
	@test -n "$(PY_LTS)" || { echo "No Python >= 3.10 found: install one (pyenv or your OS packages)."; exit 2; }
	@echo "== Django 5.2 environment with $(PY_LTS) ($$($(PY_LTS) --version))"
	$(PY_LTS) -m venv $(VENV_LTS)
	$(VENV_LTS)/bin/pip install -q --upgrade pip
	$(VENV_LTS)/bin/pip install -q -e '$(EXTRAS)' 'Django>=5.2,<5.3'
	@touch $@

$(VENV_NEW)/.installed: pyproject.toml | system-deps
	@test -n "$(PY_NEW)" || { echo "No Python >= 3.12 found for the newest Django: install one (pyenv install 3.13)."; exit 2; }
	@echo "== newest Django environment with $(PY_NEW) ($$($(PY_NEW) --version))"
	$(PY_NEW) -m venv $(VENV_NEW)
	$(VENV_NEW)/bin/pip install -q --upgrade pip
	$(VENV_NEW)/bin/pip install -q -e '$(EXTRAS)' 'Django>=6'
	@touch $@

venvs: $(VENV_LTS)/.installed $(VENV_NEW)/.installed

# The demo needs only the package and the extras the example project uses: no system packages,
# no database drivers, no test or lint tools.
VENV_DEMO := .venv/demo
$(VENV_DEMO)/.installed: pyproject.toml
	@test -n "$(PY_LTS)" || { echo "No Python >= 3.10 found: install one (pyenv or your OS packages)."; exit 2; }
	$(PY_LTS) -m venv $(VENV_DEMO)
	$(VENV_DEMO)/bin/pip install -q --upgrade pip
	$(VENV_DEMO)/bin/pip install -q -e '.[health,prometheus]' 'Django>=5.2,<5.3' 'django-environ>=0.11'
	@touch $@

demo: $(VENV_DEMO)/.installed
	@scripts/demo $(VENV_DEMO)/bin/python

.PHONY: stress
stress: $(VENV_LTS)/.installed
	$(VENV_LTS)/bin/python -m stress $(STRESS_ARGS)

lint: $(VENV_LTS)/.installed
	$(VENV_LTS)/bin/ruff check .
	$(VENV_LTS)/bin/ruff format --check .

typecheck: $(VENV_LTS)/.installed $(VENV_NEW)/.installed
	$(VENV_LTS)/bin/mypy
	$(VENV_NEW)/bin/mypy

docs: $(VENV_LTS)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV_LTS)/bin/mkdocs build --strict --quiet --site-dir .site

package: $(VENV_LTS)/.installed
	scripts/check-package $(VENV_LTS)/bin/python

test-lts: $(VENV_LTS)/.installed
	@echo "== tests: $$($(VENV_LTS)/bin/python --version), Django $$($(VENV_LTS)/bin/python -m django --version)"
	$(VENV_LTS)/bin/pytest -n $(JOBS) -m 'not servers and not serial' $(PYTEST_ARGS)
	@echo "== tests that change a server-wide setting, alone"
	$(VENV_LTS)/bin/pytest -m 'serial and not servers' $(PYTEST_ARGS) || $(NONE_SELECTED)

test-new: $(VENV_NEW)/.installed
	@echo "== tests: $$($(VENV_NEW)/bin/python --version), Django $$($(VENV_NEW)/bin/python -m django --version)"
	@echo "(the web-server matrix runs here only: the servers do not depend on Django's version)"
	$(VENV_NEW)/bin/pytest -n $(JOBS) -m 'not drivers' $(PYTEST_ARGS)
	@echo "== lock, timeout and fault tests with psycopg2 and PyMySQL (Django 5.2 ran them with psycopg 3 and mysqlclient; SQLite has one driver)"
	AUTOMIGRATE_TEST_DRIVERS=psycopg2,pymysql $(VENV_NEW)/bin/pytest -n $(JOBS) -m 'drivers and not serial' -k 'not sqlite' $(PYTEST_ARGS) || $(NONE_SELECTED)
	AUTOMIGRATE_TEST_DRIVERS=psycopg2,pymysql $(VENV_NEW)/bin/pytest -m 'drivers and serial' -k 'not sqlite' $(PYTEST_ARGS) || $(NONE_SELECTED)

test: lint typecheck docs package test-lts test-new

clean:
	rm -rf .venv .site .mypy_cache .ruff_cache .pytest_cache example_project/*.sqlite3*
