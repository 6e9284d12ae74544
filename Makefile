# Everything a fresh machine needs: `make test` builds .venv and runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch and torchvision are pinned here (not in pyproject) to the builds that
# install from this machine's disk; pyproject only states a compatible range.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed

.PHONY: test lint format bench install clean demo browser

$(VENV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Plugin packages are listed at install time (editable), so a new one reinstalls.
$(STAMP): pyproject.toml $(wildcard plugins/*/__init__.py) | $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The report's browser test needs Debian's chromium; installed here when missing
# (as root with apt-get, as on CI), else the test says how to get one.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium not found: the HTML report's browser test will fail (set QP_BROWSER)"

test: $(STAMP) browser
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
