# The two set-up commands are `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-lock

.PHONY: run test lint install clean bench system-deps screenshots

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) scripts/run.py

# Chromium, and the PostgreSQL and Redis binaries: installed with apt when we may.
system-deps:
	$(PYTHON) scripts/system_deps.py

test: system-deps lint
	$(PY) scripts/audit_deps.py
	$(PY) scripts/test.py $(PYTEST_ARGS)

# Speed at scale against the fakes on loopback (PostgreSQL on 127.0.0.1:5432); ~10 minutes.
bench: $(STAMP)
	$(PY) scripts/bench.py $(BENCH_ARGS)

# The README's pictures, from the running demo at 1280 and 390 px (docs/screenshots/).
screenshots: $(STAMP) system-deps
	$(PY) scripts/screenshots.py

# Style, types, security smells, and the layers of docs/architecture.md.
lint: $(STAMP)
	$(PY) -m ruff check .
	LETHE_DEBUG=1 $(PY) -m mypy
	$(PY) -m bandit -q -c pyproject.toml -r dashboard providers
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
