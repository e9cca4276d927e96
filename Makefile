# Self-setting-up entry points: `make run` (the main job) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SCENARIO ?= scenarios/three-domains.toml
OUT ?= out

.PHONY: run test venv bench validate clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

run: venv
	$(BIN)/planner run $(SCENARIO) -o $(OUT)

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/bench_fit.py
	$(BIN)/python benchmarks/bench_allocate.py

validate: venv
	$(BIN)/python benchmarks/validate.py --write docs/validation.md

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
