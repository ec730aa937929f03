# Two commands set up a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,keras,caffe,pytorch

.PHONY: venv demo test lint bench bench-tests mxnet-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned to the CPU build available locally; a plain `torch` pulls CUDA wheels.
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/make_sample.py examples/out/sample.onnx
	$(BIN)/modelport inspect examples/out/sample.onnx
	$(BIN)/modelport convert examples/out/sample.onnx -o examples/out/sample.opt.onnx --force --verify --per-layer

test: $(STAMP) mxnet-env
	$(BIN)/ruff check modelport tests benchmarks examples
	$(BIN)/python -m pytest -n auto -q

lint: $(STAMP)
	$(BIN)/ruff check modelport tests benchmarks examples

# Slow tests (large models, >2 GB export) and peer benchmarks: not part of CI.
bench-tests: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: bench-tests
	$(BIN)/python -m benchmarks.run

# MXNet 1.9.1 needs NumPy < 2: its own environment (.venv-mxnet), the reference of the MXNet
# importer's tests and of `--verify`; `make test` creates it when missing.
mxnet-env: $(STAMP)
	$(BIN)/python -m modelport.convert.runners.mxnet_env

clean:
	rm -rf $(VENV) examples/out .pytest_cache
