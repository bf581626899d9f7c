# The two set-up commands of the README. Everything a fresh Debian machine lacks is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: lab test bench system-deps slurm-deps clean qmio-client

# What a fresh Debian lacks: python3-venv for the venv, Node.js/npm for the lab extension build and
# JupyterHub's proxy, sudo for the Hub's SLURM profile. Installed only where missing (needs root, as
# make test runs in CI).
system-deps:
	@if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
	  echo "installing python3-venv (needs root)"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv python3-pip; \
	fi
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "installing nodejs and npm (needs root)"; \
	  apt-get update -qq && apt-get install -y -qq nodejs npm; \
	fi
	@# sudo: the Hub's SLURM profile submits each user's session job as that user (sudo -E -u)
	@if ! command -v sudo >/dev/null 2>&1; then \
	  echo "installing sudo (needs root)"; \
	  apt-get update -qq && apt-get install -y -qq sudo; \
	fi

$(STAMP): pyproject.toml | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	npm install --silent --no-fund --no-audit --prefix $(VENV)/node configurable-http-proxy@4
	touch $@

# Everything running: the QPU service, a Dask cluster for the emulator, JupyterLab (URL printed).
lab: $(STAMP)
	$(VENV)/bin/qmio demo
	$(VENV)/bin/qmio lab

# The real SLURM (slurm-wlm + munge) the tests start with tests/slurm/slurm.sh.
slurm-deps:
	bash tests/slurm/slurm.sh install

# QMIO's own client (PyPI `qmio`) in a venv of its own: its wheel also installs top-level `config`
# and `tests` packages, which must not shadow anything of ours. The gateway tests run it.
QMIO_CLIENT_VENV := .venv-qmio-client
QMIO_CLIENT_STAMP := $(QMIO_CLIENT_VENV)/.installed-stamp
$(QMIO_CLIENT_STAMP): | system-deps
	test -x $(QMIO_CLIENT_VENV)/bin/python || $(PYTHON) -m venv $(QMIO_CLIENT_VENV)
	$(QMIO_CLIENT_VENV)/bin/python -m pip install -q 'qmio==0.1.3'
	touch $@

qmio-client: $(QMIO_CLIENT_STAMP)

test: $(STAMP) slurm-deps $(QMIO_CLIENT_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS) $(LAB_TESTS_IGNORE)
	$(PY) -m pytest -p pytest_jupyter.jupyter_server $(LAB_HANDLER_TESTS)
	$(PY) -m pytest $(LAB_BROWSER_TESTS)

# Benchmarks (never timed tests): prints the table, writes bench/results.json, updates the README.
bench: $(STAMP) slurm-deps
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(QMIO_CLIENT_VENV) build dist *.egg-info .pytest_cache

# ---- the JupyterLab extension (extensions/qmio-lab) -------------------------------------------
# `pip install` builds it once (hatch-jupyter-builder); this rebuilds it whenever its sources
# change and serves the build folder itself, so a running lab picks the new bundle up on reload.
EXT_DIR := extensions/qmio-lab
EXT_OUT := qmio_lab/labextension/static/style.js
EXT_SRC := $(wildcard $(EXT_DIR)/src/*.ts $(EXT_DIR)/style/*.css $(EXT_DIR)/style/*.js $(EXT_DIR)/schema/*.json) \
           $(EXT_DIR)/package.json $(EXT_DIR)/yarn.lock $(EXT_DIR)/tsconfig.json
EXT_LINK := $(VENV)/share/jupyter/labextensions/qmio-lab
VENV_PATH := PATH="$(abspath $(VENV))/bin:$$PATH"
# Handler tests need pytest-jupyter's server plugin and the browser tests must not share a pytest
# session with it (teardown errors), so each runs as its own invocation after the main suite.
LAB_HANDLER_TESTS := tests/test_labserver_handlers.py tests/test_labserver_fuzz.py
LAB_BROWSER_TESTS := tests/browser
LAB_TESTS_IGNORE := $(addprefix --ignore=,$(LAB_HANDLER_TESTS) $(LAB_BROWSER_TESTS))

.PHONY: labextension browser-deps
lab: labextension
test: labextension browser-deps

labextension: $(EXT_OUT)

$(EXT_OUT): $(EXT_SRC) | $(STAMP)
	cd $(EXT_DIR) && $(VENV_PATH) jlpm install --immutable && $(VENV_PATH) jlpm build:prod
	touch $@
	rm -rf $(EXT_LINK) && ln -s "$(abspath qmio_lab/labextension)" $(EXT_LINK)

# The browser tests drive Debian's Chromium (Playwright's own download is not reachable here).
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium (needs root)"; \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	fi
