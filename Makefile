# Everything a fresh machine needs: `make demo` (main job) and `make test` (the tests).
# Both create the virtual environment in .venv and install the project into it first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Pinned so that pip takes the wheels that lie on the development machines' disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# Most tests start a Python process (the CLIs); one pytest worker per core, each with one torch
# thread, halves the suite's time on a 2-core machine (28 -> 16 min on an AVX2 CPU).
TEST_WORKERS ?= auto

.PHONY: setup test lint format demo benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# ruff, then the layering (the import contract in pyproject.toml), cycles and module sizes.
lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/check_layout.py

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# The main job: a sample photo (scikit-image's astronaut) through every pretrained model of the
# zoo (seconds), then a short training on the five photos that scikit-image ships and one-pass
# stylization of the same photo with the trained generator.
DEMO_DIR := outputs/quickstart/$(shell date +%Y-%m-%d_%H-%M-%S)
demo: setup
	$(PY) scripts/sample_photo.py $(DEMO_DIR)/photo.png
	for model in $$($(PY) -c "from gan_stylizer import zoo; print(*zoo.names())"); do \
		$(PY) stylize.py ckpt=$$model input=$(DEMO_DIR)/photo.png output=$(DEMO_DIR)/zoo/ || exit 1; \
	done
	$(PY) train.py experiment=quickstart hydra.run.dir=$(DEMO_DIR)/run
	$(PY) stylize.py ckpt=$(DEMO_DIR)/run/checkpoints/last.ckpt input=$(DEMO_DIR)/photo.png output=$(DEMO_DIR)/photo_trained.png
	@echo "demo: see $(DEMO_DIR)/zoo/ (pretrained), $(DEMO_DIR)/photo_trained.png and $(DEMO_DIR)/run/samples/"

benchmark: setup
	$(PY) scripts/benchmark.py

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache
