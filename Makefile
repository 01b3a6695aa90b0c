# One command each on a fresh clone: `make demo`, `make test`, `make lint`, `make docs`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := train,dev,mqtt,plot,fleet,eval,docs

.PHONY: demo test test-fast lint docs install clean system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m edgecnn.demo

system-deps:
	tools/system-deps

test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider

# The inner loop: no training, no model building, no TensorFlow (tests marked slow, see tests/conftest.py).
# No system-deps: the few tests that use nspawn, mosquitto or chromium skip where they are absent.
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The documentation site at http://127.0.0.1:8000, rebuilt on every save (mkdocs.yml; pages in docs/).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) build dist *.egg-info runs site
