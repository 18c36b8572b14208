# Each target creates (or reuses) .venv, installs the package into it, and runs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m autograd_cnn demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install -q 'torch==2.13.0' || $(PY) -m pip install -q torch || echo "PyTorch not installed: ratios against it are skipped"
	$(PY) -m pip install -q tensorflow-cpu keras || echo "Keras/TensorFlow not installed: their columns are skipped"
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(PY) -m ruff check autograd_cnn tests examples benchmarks

clean:
	rm -rf $(VENV) out build *.egg-info
