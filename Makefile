# AutoTM microtools. `make reproduce` and `make test` are the two commands a user types on a
# fresh clone: each installs what it needs first.
#
#   make install     bootstrap uv (from PyPI, when missing) and sync .venv with the system python3
#   make test        the test suite (installs first)
#   make lint        ruff and mypy over every package, hadolint over every Dockerfile
#   make reproduce   the whole workflow on the embedded default suite, ending with the report
#   make images      build one container image per tool (needs a docker engine)
#   make clean       remove build outputs (keeps .venv; `make distclean` removes it too)

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
# Use the uv on PATH when there is one; otherwise install it from PyPI into .tools/.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

VENV_STAMP := .venv/.synced
MEMBERS_PYPROJECT := $(wildcard schemas/pyproject.toml tools/*/pyproject.toml)

.PHONY: help install test lint reproduce clean distclean

help:
	@sed -n '2,11p' Makefile | sed 's/^# \{0,1\}//'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

$(VENV_STAMP): pyproject.toml uv.lock $(MEMBERS_PYPROJECT) | $(UV)
	$(UV) sync --locked --python "$$(command -v $(PYTHON))" --all-packages
	@touch $@

install: $(VENV_STAMP)

test: $(VENV_STAMP)
	.venv/bin/python -m pytest $(PYTEST_ARGS)

lint: $(VENV_STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy schemas/src tools/*/src tests benchmarks
	@if ls containers/*/Dockerfile* >/dev/null 2>&1; then .venv/bin/hadolint containers/*/Dockerfile*; fi

include containers/containers.mk
-include reproduce.mk

clean:
	rm -rf out build .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

distclean: clean
	rm -rf .venv .tools
