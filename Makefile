# Everything a fresh machine needs: `make demo` (main job) and `make test` (the tests).
# Both create the virtual environment in .venv and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Pinned so that pip takes the wheels that lie on the development machines' disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: setup test lint format demo benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# The main job on the embedded default: a short training run on the photos that scikit-image
# ships, then one-pass stylization of one of them with the trained generator.
DEMO_DIR := outputs/quickstart/$(shell date +%Y-%m-%d_%H-%M-%S)
demo: setup
	$(PY) train.py experiment=quickstart hydra.run.dir=$(DEMO_DIR)
	$(PY) scripts/sample_photo.py $(DEMO_DIR)/photo.png
	$(PY) stylize.py ckpt=$(DEMO_DIR)/checkpoints/last.ckpt input=$(DEMO_DIR)/photo.png output=$(DEMO_DIR)/photo_stylized.png
	@echo "demo: see $(DEMO_DIR)/photo_stylized.png and $(DEMO_DIR)/samples/"

benchmark: setup
	$(PY) scripts/benchmark.py

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
