# genq: `make demo` runs jobs end to end on embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test lint bench clean

# CPU torch first: any other torch requirement would pull a multi-GB CUDA build.
$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -q -e '.[test]'
	touch $@

demo: $(VENV)/.base
	$(VENV)/bin/genq demo

test: $(VENV)/.test
	$(PY) -m pytest -q

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.test
	$(PY) bench/queue_overhead.py

clean:
	rm -rf $(VENV) .genq .genq-demo
