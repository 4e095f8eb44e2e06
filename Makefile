# make test | demo | bench: each builds .venv first if needed (fresh clone, fresh machine), then runs.
# The install happens once: .venv/.installed is remade only when pyproject.toml changes.
# torch==2.13.0 (pinned in pyproject.toml) comes from the CPU wheel that pip's configured find-links
# point at; PIP_ARGS passes extra options to that install (e.g. an index of CPU wheels elsewhere).

PYTHON ?= python3
PIP_ARGS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_ARGS) -e '.[test]'
	touch $@

demo: venv
	$(BIN)/rnnkit demo

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/bench_core.py
