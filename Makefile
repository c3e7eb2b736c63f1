# Two commands do all the set-up: `make run` runs the suite, `make test` runs the tests.
# Both create .venv/ (python3 -m venv) and install the package with its dev and local extras when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PARAMS ?= params/local.yaml
ARGS   ?=

.PHONY: run test bench clean-runs venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,local]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m monitor_utils run -f $(PARAMS) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: $(STAMP)
	$(PY) bench/drift.py
	$(PY) bench/publish.py
	$(PY) bench/ingest.py
	$(PY) bench/memory.py

clean-runs:
	rm -rf runs/
