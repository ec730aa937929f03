# Two commands set up a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= dev,docs,cpu,keras,tensorflow,caffe,torch7,pytorch

.PHONY: venv demo test test-lowest lint docs bench bench-tests mxnet-env clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned to the CPU build available locally; a plain `torch` pulls CUDA wheels.
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	# a Keras CNN (.h5) and a Caffe net with seeded weights, then each converted and verified
	$(BIN)/python examples/make_demo_models.py examples/out
	# conversion reads the .h5 natively: TensorFlow and Keras are blocked in this process
	$(BIN)/python examples/without_tensorflow.py convert examples/out/demo_cnn.h5 -o examples/out/demo_cnn.onnx --force
	# verification runs the original in Keras (tf_keras) and the ONNX in onnxruntime, layer by layer
	$(BIN)/modelport verify examples/out/demo_cnn.h5 examples/out/demo_cnn.onnx --per-layer
	$(BIN)/modelport convert examples/out/demo_lenet.prototxt --weights examples/out/demo_lenet.caffemodel -o examples/out/demo_lenet.onnx --force --verify --per-layer

test: $(STAMP) mxnet-env
	$(BIN)/ruff check modelport tests benchmarks examples
	# the documentation site: a broken link, a missing page or a bad docstring fails here
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/python -m pytest -n auto -q

# The lowest dependency versions pyproject.toml admits (constraints-lowest.txt, kept in step by
# tests/test_lowest.py) in .venv-lowest, and the tests that need no source framework
# (tests/framework_free.args) run against them. Not part of `make test` / CI: see
# docs/development.md for what the subset covers and how long it takes.
LOWEST ?= .venv-lowest
test-lowest:
	test -x $(LOWEST)/bin/python || $(PY) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install -q -c constraints-lowest.txt -e ".[dev,cpu,caffe]"
	$(LOWEST)/bin/python -m pip check
	$(LOWEST)/bin/python -m pytest -q @tests/framework_free.args

# The documentation site into site/ (open site/index.html, or `mkdocs serve` to browse it live).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check modelport tests benchmarks examples

# Slow tests (large models, >2 GB export) and peer benchmarks: not part of CI.
bench-tests: $(STAMP)
	# the HTML report is checked in headless Chromium (Debian's package)
	command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)
	$(BIN)/python -m pytest -q -m slow

bench: bench-tests
	$(BIN)/python -m benchmarks.run

# MXNet 1.9.1 needs NumPy < 2: its own environment (.venv-mxnet), the reference of the MXNet
# importer's tests and of `--verify`; `make test` creates it when missing.
mxnet-env: $(STAMP)
	$(BIN)/python -m modelport.convert.runners.mxnet_env

clean:
	rm -rf $(VENV) examples/out .pytest_cache site

# Keras 1.2.2 and 2.2.4 on Theano 1.0.5 (.venv-theano-k1/, .venv-theano-k2/): the verification
# reference for Theano-backend Keras files. The tests create them on demand too.
.PHONY: theano-env
theano-env: $(STAMP)
	$(BIN)/python -m modelport.convert.runners.theano_env
