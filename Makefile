# cgm-ray: `make demo` runs the main job end to end, `make test` runs the test suite,
# `make lint` checks style, types (base and glucose layers) and the layer contract.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean node-deps loop-deps

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

# Loop's algorithm (Tidepool's PyLoopKit, BSD-2) for simulators/controllers/loop_reference.py.
# Its only release on PyPI, the sdist pyloopkit-test, pins numpy==1.16.4 (which does not build on
# Python 3.11), so it goes into the venv without its pins; numpy 2 runs it (tests/test_loop_reference.py).
# The one other module it imports is a monkey-patch that backports-datetime-fromisoformat 2.x
# makes a no-op on Python 3.11+.
PYLOOPKIT_VERSION := 0.0.15
LOOP_STAMP := $(VENV)/.pyloopkit-$(PYLOOPKIT_VERSION)

$(LOOP_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps pyloopkit-test==$(PYLOOPKIT_VERSION) \
		backports-datetime-fromisoformat==2.0.3
	touch $(LOOP_STAMP)

loop-deps: $(LOOP_STAMP)

test: $(STAMP) $(LOOP_STAMP) $(if $(HAVE_NODE),$(NODE_STAMP))
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) $(LOOP_STAMP) $(if $(HAVE_NODE),$(NODE_STAMP))
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_cohort.py
	$(BIN)/python benchmarks/bench_controllers.py

clean:
	rm -rf $(VENV) .node out .pytest_cache
