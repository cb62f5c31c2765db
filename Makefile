# Two commands for a newcomer: `make run` and `make test`. Each sets up the machine by itself:
# a bootstrap virtualenv holding uv, then the project's .venv from the lock file; `make test` also
# the Chromium of the browser tests, first (see `browser`).
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck unit setup browser clean bench soak screenshot

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9

# Bytecode is compiled at install: where PYTHONDONTWRITEBYTECODE is set, Python would otherwise
# compile every module from source at each start (twice the start-up time).
$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON) --quiet
	touch $@

setup: $(VENV)/.synced
	@$(VENV)/bin/python -m compileall -q src

run: setup
	$(VENV)/bin/crazy-gary serve

lint: setup
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts

typecheck: setup
	$(VENV)/bin/mypy

# The browser tests drive Debian's Chromium: installed here as root with apt-get, else make stops at
# once with a line saying what to install (scripts/chromium.py).
browser:
	@$(PYTHON) scripts/chromium.py

# Three workers (pytest-xdist) on two cores, a module's tests in one of them (the module fixtures
# stay shared): much of the suite waits on processes and sockets rather than computing.
unit: browser setup
	$(VENV)/bin/pytest -n 3 --dist loadscope

test: browser lint typecheck unit

bench: setup
	$(VENV)/bin/python -m bench

# Mixed traffic for SOAK_MINUTES (default 10) with faults in the simulator and a restart of serve;
# not part of `make test` (README, "Soak test").
soak: setup
	$(VENV)/bin/python -m bench.soak

# The README's picture of the page, taken by the browser test that wakes an endpoint.
screenshot: browser setup
	DASHBOARD_SCREENSHOT=docs/dashboard.png $(VENV)/bin/pytest -q tests/browser -k wake_and_sleep

clean:
	rm -rf $(TOOLS) $(VENV) .mypy_cache .pytest_cache .ruff_cache
