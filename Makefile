# Thin wrappers: every target calls bench.py or pytest inside the project's own venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Test processes: most tests wait on servers, signals and load windows rather than compute, so 3 on
# 2 cores halves the wall time; loadfile keeps a module (and its module-scoped runs) on one process.
TEST_PROCS ?= 3

.PHONY: install bench smoke tune test lint calibrate clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

bench: $(STAMP)
	$(PY) bench.py run --preset default

smoke: $(STAMP)
	$(PY) bench.py run --preset smoke

tune: $(STAMP)
	$(PY) bench.py run --preset tune

calibrate: $(STAMP)
	$(PY) bench.py calibrate

test: $(STAMP)
	sh .ci/chromium
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q -n $(TEST_PROCS) --dist loadfile

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
	find results -mindepth 1 -maxdepth 1 ! -name .gitkeep -exec rm -rf {} +
