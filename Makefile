# Two entry points for a newcomer: `make run` (the main job) and `make test`.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# libvirt-python builds from source against libvirt-dev; take it only where that can work.
EXTRAS := --extra dev $(shell pkg-config --exists libvirt 2>/dev/null && echo --extra libvirt)

.PHONY: run test lint typecheck unit bench-smoke clean

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'uv>=0.4.30'

$(VENV)/.installed: pyproject.toml uv.lock | $(BIN)/uv
	UV_PROJECT_ENVIRONMENT=$(VENV) $(BIN)/uv sync --frozen --inexact $(EXTRAS)
	touch $@

run: $(VENV)/.installed
	$(BIN)/pcifleet up $(ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check pcifleet tests benchmarks
	$(BIN)/ruff format --check pcifleet tests benchmarks

typecheck: $(VENV)/.installed
	$(BIN)/mypy pcifleet

unit: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench-smoke: $(VENV)/.installed
	$(BIN)/python benchmarks/run_smoke.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
