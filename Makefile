# Self-setting-up entry points: `make run` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= scenarios/three-domains.toml
OUT ?= out
PYTEST_ARGS ?=

.PHONY: run test test-fast fuzz venv bench validate clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

# Reinstalled whenever pyproject.toml changes (new dependency, extra, entry point).
$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(BIN)/planner run $(SCENARIO) -o $(OUT)

# The whole suite but the long fuzz runs (published data is in data/published; only the browser test may skip, when chromium is missing).
test: venv
	$(BIN)/python -m pytest -q -m "not fuzz_long" $(PYTEST_ARGS)

# Everything but the tests marked slow (under a minute on 2 cores).
test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The long fuzz runs (thousands of broken scenario files, run tables, law and result files, rules).
fuzz: venv
	$(BIN)/python -m pytest -q -m fuzz_long $(PYTEST_ARGS)

# Medians, printed: fit (and the chinchilla package), optimizer scaling in K, whole scenarios and start-up, reports.
bench: venv
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_allocate.py
	$(BIN)/python benchmarks/bench_scenario.py
	$(BIN)/python benchmarks/bench_report.py

validate: venv
	$(BIN)/python benchmarks/validate.py --write docs/validation.md

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
