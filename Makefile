# Two commands do everything on a fresh machine with Python 3.11 and pip:
#   make demo   set up, generate data, train, finalize several models, predict, draw
#   make test   set up and run the whole test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test bench lint clean

# the demo needs the runtime dependencies and matplotlib; the tests, the developer extra
$(VENV)/.python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) on PATH (or make PYTHON=python3)"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	touch $@

$(DEMO_STAMP): pyproject.toml $(VENV)/.python
	$(PY) -m pip install --quiet -e '.[plot]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml $(VENV)/.python
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) examples/demo.py --workdir demo-output

# two workers, each taking whole test files (a file's servers, clusters and data are set up once)
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check onepass tests benchmarks

clean:
	rm -rf $(VENV) demo-output .pytest_cache
