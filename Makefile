# One-command entry points. Every target sets up .venv itself (idempotent), so a fresh clone needs only `make X`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv test demo bench lint clean

venv: $(STAMP)

# torch goes in first, then everything else with torch held by constraints.txt: a CPU box never pulls CUDA wheels.
$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	touch $(STAMP)

test: venv
	bash tools/install_browser.sh
	$(PY) -m pytest -q tests --doctest-modules utils rexkg swift_patches/image_processor.py swift_patches/vision_attention.py swift_patches/freezing.py swift_patches/grpo_trainer.py tools/plot_training.py tools/set_is_correct.py tools/sweep_summary.py

demo: venv
	bash tools/demo.sh

bench: venv
	for b in bench/*_bench.py; do $(PY) $$b || exit 1; done

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) demo_out .pytest_cache
