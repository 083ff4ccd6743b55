# poseshift: `make demo` to see it work, `make test` to check it. Both install into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint clean bench-data bench-poseaug bench-speed bench-evolve

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so nothing below can pull a different (CUDA) build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv with torch (CPU), the package (editable) and test tools

# demo: 2 torch threads unless OMP_NUM_THREADS says otherwise (the README's table needs the same count)
demo: install  ## train the baseline on the embedded mocap benchmark and print the results table
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VENV)/bin/poseshift fit --config experiments/baseline/mocap.yaml --test_after_fit true $(ARGS)

test: install  ## run the test suite (what CI runs)
	WANDB_MODE=$${WANDB_MODE:-disabled} $(PY) -m pytest -q tests

bench-data: install  ## full-size H36M-format file set: load time and peak memory (targets < 20 s, < 4 GB)
	$(PY) benchmarks/bench_data.py $(ARGS)

bench-poseaug: install  ## baseline vs PoseAug (+ Table 5/6/7 rows) on the embedded benchmark, 3 seeds
	WANDB_MODE=disabled $(PY) benchmarks/bench_poseaug.py --ablations all --double-baseline $(ARGS)

bench-speed: install  ## samples/s of baseline and PoseAug vs plain PyTorch and the matmul ceiling
	WANDB_MODE=disabled $(PY) benchmarks/bench_speed.py --threads 1 $(ARGS)

bench-evolve: install  ## EvoSkeleton evolution speed (valid new poses/s, peak memory) from 50k and 500k poses
	$(PY) benchmarks/bench_evolve.py $(ARGS)

lint: install  ## ruff
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) *.egg-info build dist .pytest_cache .ruff_cache
