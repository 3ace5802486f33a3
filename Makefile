# Everything runs from .venv, which `make setup` creates and fills (torch 2.13.0 CPU from local disk).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TESTS  := $(VENV)/.installed-test

.PHONY: setup demo profile test bench clean

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

profile: setup
	$(VENV)/bin/stochw2v profile --size base

test: $(TESTS)
	$(PY) -m pytest

bench: $(TESTS)
	$(PY) benchmarks/encoder_speed.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info
