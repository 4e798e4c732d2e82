# cgm-ray: `make demo` runs the main job end to end, `make test` runs the test suite,
# `make lint` checks style, types (base and glucose layers) and the layer contract.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean node-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cgm-ray demo

# The real oref0 (npm, MIT) for the oref0 port's parity tests, in a project-local folder.
# Installed when Node is on PATH; without Node those tests skip and say why.
OREF0_VERSION := 0.7.1
NODE_STAMP := .node/.oref0-$(OREF0_VERSION)
HAVE_NODE := $(shell command -v node 2>/dev/null)

$(NODE_STAMP):
	npm install --prefix .node --no-audit --no-fund --silent oref0@$(OREF0_VERSION)
	touch $(NODE_STAMP)

node-deps: $(NODE_STAMP)

test: $(STAMP) $(if $(HAVE_NODE),$(NODE_STAMP))
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_cohort.py

clean:
	rm -rf $(VENV) .node out .pytest_cache
