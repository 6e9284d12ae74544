# Everything a fresh machine needs: `make test` builds .venv and runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch and torchvision are pinned here (not in pyproject) to the builds that
# install from this machine's disk; pyproject only states a compatible range.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: test lint format bench install clean demo

$(VENV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Plugin packages are listed at install time (editable), so a new one reinstalls.
$(STAMP): pyproject.toml $(wildcard plugins/*/__init__.py) | $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check qpcore plugins tests benchmarks examples
	$(BIN)/ruff format --check qpcore plugins tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format qpcore plugins tests benchmarks examples
	$(BIN)/ruff check --fix qpcore plugins tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The main job: train the packaged default run (data generated on first use).
demo: $(STAMP)
	$(BIN)/qp train

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
