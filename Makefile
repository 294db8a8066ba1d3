# Two entry points for a newcomer: `make run` (the main job) and `make test`.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# libvirt-python builds from source against libvirt-dev; take it only where that can work.
EXTRAS := --extra dev $(shell pkg-config --exists libvirt 2>/dev/null && echo --extra libvirt)

.PHONY: run test lint typecheck unit bench-smoke conformance clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'uv>=0.4.30'

# Bytecode compiled at install: every `pcifleet` command imports from it at
# once, even where Python may not write it (PYTHONDONTWRITEBYTECODE, a
# read-only tree); without it `pcifleet up` spent seconds compiling sources.
$(VENV)/.installed: pyproject.toml uv.lock | $(BIN)/uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --inexact --compile-bytecode $(EXTRAS)
	$(BIN)/python -m compileall -q pcifleet
	touch $@

run: $(VENV)/.installed
	$(BIN)/pcifleet up $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check pcifleet tests benchmarks conformance
	$(BIN)/ruff format --check pcifleet tests benchmarks conformance

typecheck: $(VENV)/.installed
	$(BIN)/mypy pcifleet

unit: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench-smoke: $(VENV)/.installed
	$(BIN)/python benchmarks/run_smoke.py

# OpenStack's own API tests against a pcifleet started for them (conformance/run.py).
# Tempest gets its own venv: its pins clash with ours.
TEMPEST_VENV := .venv-tempest
TEMPEST_VERSION := 47.0.0

$(TEMPEST_VENV)/.installed: | $(BIN)/uv
	$(BIN)/uv venv -q $(TEMPEST_VENV)
	$(BIN)/uv pip install -q --python $(TEMPEST_VENV)/bin/python tempest==$(TEMPEST_VERSION)
	touch $@

conformance: $(VENV)/.installed $(TEMPEST_VENV)/.installed
	TEMPEST_VENV=$(TEMPEST_VENV) $(BIN)/python conformance/run.py $(ARGS)

clean:
	rm -rf $(VENV) $(TEMPEST_VENV) .pytest_cache .mypy_cache .ruff_cache
