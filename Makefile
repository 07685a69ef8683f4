# pixlearn: `make run` starts the main job (the service and its web page), `make test` runs the whole test suite.
# Both create .venv when it is missing and install what they need; a second run skips the install.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pixlearn-installed
# torch from this machine's disk: pip takes these wheels from the local index / find-links folder its configuration
# names (`pip config list`); TORCH='torch==X torchvision==Y' picks other versions
ifeq ($(shell uname -m),aarch64)
TORCH ?= torch==2.9.1 torchvision==0.24.1
else
TORCH ?= torch==2.14.1 torchvision==0.29.1
endif
PIP := $(PY) -m pip --disable-pip-version-check -q
WORKERS ?= 2

.PHONY: install system-deps run test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	@echo "installing pixlearn and its dependencies into $(VENV) (first run only)..." >&2
	$(PIP) install --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PIP) install $(TORCH) 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(PIP) install -e '.[dev]' 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	@touch $(STAMP)

install: $(STAMP)

# the service + web page on http://127.0.0.1:8000 (HOST/PORT to change); data under runs/serve
HOST ?= 127.0.0.1
PORT ?= 8000
run: $(STAMP)
	$(VENV)/bin/pixlearn serve --demo --host $(HOST) --port $(PORT) --storage runs/serve

system-deps:
	@bash scripts/install-system-deps.sh

test: $(STAMP) system-deps
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -n $(WORKERS) -q

bench: $(STAMP)
	$(PY) benchmarks/bench_io.py

clean:
	rm -rf $(VENV) runs build dist src/*.egg-info .pytest_cache
