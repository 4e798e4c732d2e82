# cgm-ray: `make demo` runs the main job end to end, `make test` runs the test suite,
# `make lint` checks style, types (base and glucose layers) and the layer contract.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean node-deps loop-deps browser-deps monitor monitor-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# `make demo DEMO_ARGS=--keep-serving` then serves the web app with its links until Ctrl-C.
demo: $(STAMP)
	$(BIN)/cgm-ray demo $(DEMO_ARGS)

# Node packages the tests run as real peers, in a project-local folder, one stamp per pinned
# package: oref0 (npm, MIT) for the oref0 port's parity tests, and share2nightscout-bridge (npm,
# GPL-3.0-only; run as a separate program, not linked) as a real Nightscout uploader in
# tests/test_nightscout_clients.py, and axe-core (npm, MPL-2.0), the accessibility checker the
# web app's browser tests run in the page. Installed when Node is on PATH; without Node those
# tests skip and say why. One after the other (order-only prerequisites): all write
# .node/package.json.
OREF0_VERSION := 0.7.1
SHARE_BRIDGE_VERSION := 0.2.12
NODE_STAMP := .node/.oref0-$(OREF0_VERSION)
SHARE_BRIDGE_STAMP := .node/.share2nightscout-bridge-$(SHARE_BRIDGE_VERSION)
AXE_VERSION := 4.14.1
AXE_STAMP := .node/.axe-core-$(AXE_VERSION)
NODE_STAMPS := $(NODE_STAMP) $(SHARE_BRIDGE_STAMP) $(AXE_STAMP)
HAVE_NODE := $(shell command -v node 2>/dev/null)

$(NODE_STAMP):
	npm install --prefix .node --no-audit --no-fund --silent oref0@$(OREF0_VERSION)
	touch $(NODE_STAMP)

$(SHARE_BRIDGE_STAMP): | $(NODE_STAMP)
	npm install --prefix .node --no-audit --no-fund --silent --save-exact \
		share2nightscout-bridge@$(SHARE_BRIDGE_VERSION)
	touch $(SHARE_BRIDGE_STAMP)

$(AXE_STAMP): | $(SHARE_BRIDGE_STAMP)
	npm install --prefix .node --no-audit --no-fund --silent --save-exact axe-core@$(AXE_VERSION)
	touch $(AXE_STAMP)

node-deps: $(NODE_STAMPS)

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

# Headless Chromium and its WebDriver, Debian's chromium and chromium-driver, for the web app's
# browser tests (tests/test_web_app.py, through Selenium). apt-get needs root; where it cannot
# run, those tests skip and say why.
browser-deps:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver; \
	else echo "browser-deps: not root, so no apt-get: the browser tests will skip"; fi

# Prometheus (Debian's prometheus package, Apache-2.0) for `cgm-ray monitor` and its test
# (tests/test_monitoring.py); without root, that test skips and says why.
monitor-deps:
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends prometheus; \
	else echo "monitor-deps: not root, so no apt-get: the Prometheus test will skip"; fi

# `make monitor` runs Prometheus over the local Ray until Ctrl-C; `make monitor MONITOR_ARGS=
# "-- .venv/bin/cgm-ray serve"` runs a command under it and stops with the command.
monitor: $(STAMP) monitor-deps
	$(BIN)/cgm-ray monitor $(MONITOR_ARGS)

test: $(STAMP) $(LOOP_STAMP) $(if $(HAVE_NODE),$(NODE_STAMPS)) browser-deps monitor-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) $(LOOP_STAMP) $(if $(HAVE_NODE),$(NODE_STAMPS))
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_cohort.py
	$(BIN)/python benchmarks/bench_controllers.py
	$(BIN)/python benchmarks/bench_hot_path.py

clean:
	rm -rf $(VENV) .node out .pytest_cache
