# Everything runs from .venv, which `make setup` creates and fills (torch 2.13.0 CPU from local disk).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TESTS  := $(VENV)/.installed-test

.PHONY: setup demo experiment experiment-results profile test test-fast lint bench gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	bash scripts/install_system_packages.sh
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

# the tests' oracles (HF transformers, jiwer) and kenlm for the n-gram LM path
$(TESTS): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(TESTS)

# The main job: synthetic corpus -> stochastic pre-training -> CTC fine-tuning -> WER per setting.
demo: setup
	$(VENV)/bin/stochw2v demo --out runs/demo

# The paper's claims on learning curves: the core arms from shared warm starts, 3 seeds, the short budget
# (2 processes of 1 thread). `stochw2v experiment --budget long --arms ...` continues the same folder.
experiment: setup
	$(VENV)/bin/stochw2v experiment --out runs/experiment
	cp runs/experiment/EXPERIMENT.md EXPERIMENT.md
	mkdir -p docs && cp runs/experiment/curves.png docs/experiment_curves.png
	$(MAKE) experiment-results

# what the report is made from (plan, stage records, curves, per-utterance test scores; no weights), kept in git
# so that a later session can re-read the figures of a run whose folder is gone
experiment-results:
	mkdir -p docs/experiment_results
	cd runs/experiment && find . -path ./data -prune -o -path ./logs -prune -o \( -name plan.json -o -name stage.json \
		-o -name log.jsonl -o -name 'test-*.json' \) -print | xargs -I{} cp --parents {} ../../docs/experiment_results/

profile: setup
	$(VENV)/bin/stochw2v profile --size base

test: $(TESTS)
	$(PY) -m pytest --durations=10

# everything but the tests marked slow (training fixtures, torchrun, demo, synthesis): under 30 s
test-fast: $(TESTS)
	$(PY) -m pytest -m "not slow"

lint: $(TESTS)
	$(VENV)/bin/ruff check src tests benchmarks

bench: $(TESTS)
	$(PY) benchmarks/encoder_speed.py --dtypes fp32,bf16 --batches 1,8 --onnx

# on a CUDA machine: the CUDA tests, encoder timing against HF, bf16 pre-training and fine-tuning through torchrun
gpu-check: $(TESTS)
	bash scripts/gpu_check.sh

clean:
	rm -rf $(VENV) runs build src/*.egg-info
