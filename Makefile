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

# The inner loop: every test not marked slow (slow: training, conversion or model building with TensorFlow,
# the wheel build and install, the systemd container, the browser; see tests/conftest.py), one worker per
# core (pytest-xdist, one test file per worker so module fixtures are built once). 220 s of CPU time, so about
# 2 min on 2 free cores (docs/development.md, "The inner loop"); `make test` still runs everything, in one process.
# No system-deps: the few tests that use mosquitto skip where it is absent.
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" -n auto --dist loadfile

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The documentation site at http://127.0.0.1:8000, rebuilt on every save (mkdocs.yml; pages in docs/).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs serve

clean:
	rm -rf $(VENV) build dist *.egg-info runs site
