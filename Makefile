# `make run`: create .venv on first use, install collapse, run the default experiment.
# `make test`: same set-up, then the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# test processes (pytest-xdist): the machine's cores, at most 4 (each worker holds its own JAX, ~1-2 GB)
WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: install run test test-fast bench base-model shumailov paper paper-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[dev,text]'
	touch $@

# the tests also compare collapse's language models with Hugging Face transformers (PyTorch, CPU build) and run a
# multirun through Hydra's Ray launcher (the [ray] extra: ray 2.60, ~400 MB; it pins cloudpickle < 3)
$(BIN)/.test-extras: $(BIN)/.installed
	$(BIN)/python -m pip install -q -e '.[dev,text,parity,ray]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/collapse $(ARGS)

test: install $(BIN)/.test-extras
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal $(PYTEST_ARGS)

test-fast: install $(BIN)/.test-extras
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist worksteal -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/bench_default_run.py
	$(BIN)/python benchmarks/bench_sample_metrics.py
	$(BIN)/python benchmarks/bench_compile.py --markdown
	$(BIN)/python benchmarks/bench_gaussian.py
	$(BIN)/python benchmarks/bench_gmm.py
	$(BIN)/python benchmarks/bench_transformer.py
	$(BIN)/python benchmarks/bench_lm.py
	$(BIN)/python benchmarks/bench_vae.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_curation.py

# the offline Shumailov pipeline: pre-train a small GPT-2 on the KJV once (~6 min on 2 cores), then fine-tune it
# generation after generation on its own prompted text (experiment=shumailov_pretrained, ~2 min)
models/kjv-gpt2/config.json: | $(BIN)/.installed
	$(BIN)/collapse-pretrain --corpus kjv --out models/kjv-gpt2

base-model: install models/kjv-gpt2/config.json

shumailov: base-model
	$(BIN)/collapse experiment=shumailov_pretrained $(ARGS)

paper: install
	$(MAKE) -C paper

paper-quick: install
	$(MAKE) -C paper quick

clean:
	rm -rf $(VENV) runs .pytest_cache
