# Two commands do everything on a fresh machine:
#   make quick   set up, then run the `quick` study on the bundled synthetic dataset
#   make test    set up, then run the test suite (what CI runs)
# For the edit loop: make test-fast (the unit tier, no end-to-end study runs), make lint and make docs.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# torch goes in first so pip never resolves a multi-GB CUDA build by accident. With a GPU, set
# TORCH_SPEC/TORCH_INDEX to the build you want, e.g. make setup TORCH_INDEX=<your CUDA wheel index>.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: setup quick test test-fast lint docs ui clean-state

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e ".[dev,postgres]"
	touch $@

quick: setup
	$(VENV)/bin/vae-lab study run quick

# --durations=25: every CI log names the slowest tests, so a creeping suite shows where it grew.
# -n 2 --dist loadfile: one pytest worker per core (pytest-xdist), a test file's tests on one worker
# so its module fixtures (a finished study, a Ray cluster) are built once; the slow tests mostly
# wait on processes and servers, so two at once take 11.6 min where one at a time took 18.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

# The unit tier: the folders that mirror the package and the fast top-level files, without the
# tests marked slow. Left to `make test`: slow tests (real studies, workers, servers, browsers)
# and the other tests/test_*.py (the CLI through real console processes, compose files,
# bad-input corpus, secrets).
UNIT_TESTS ?= tests/data tests/models tests/training tests/tracking tests/study tests/viz \
	tests/test_selection.py tests/test_registry_rules.py tests/test_stores_login.py tests/test_threads.py \
	tests/test_config.py tests/test_hygiene.py tests/test_docs.py
# -n 2: one pytest worker per core of these machines (pytest-xdist); the unit tests share nothing.
test-fast: setup
	$(PY) -m pytest -q -n 2 -m "not slow" $(UNIT_TESTS)

# ruff: formatted at 120 columns, linted (pyproject.toml [tool.ruff]); CI runs it before the tests.
lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .

# The documentation site (mkdocs.yml, docs/) into site/; --strict fails on a broken link or anchor
# and on a page missing from the nav. Needs the docs extra: $(PY) -m pip install -e ".[docs]".
docs: setup
	$(PY) -m mkdocs build --strict -d site

ui: setup
	$(VENV)/bin/vae-lab ui

# Forget every local run, trial and cached dataset (asks nothing: use with care).
clean-state:
	rm -rf mlflow.db mlflow.db.lock .vae-lab
	find mlruns -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
