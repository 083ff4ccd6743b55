# poseshift: `make demo` to see it work, `make test` to check it. Both install into .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help install demo test test-quick lint format clean bench bench-poseaug bench-evoskeleton bench-adaptpose \
	bench-poseda bench-poseda-extra bench-poseda-speed bench-syncadv bench-syncadv-ablations bench-syncadv-speed \
	bench-data bench-speed bench-evolve

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /  \1\t/' | expand -t 18

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

test: install  ## lint, format check and the whole test suite (what CI runs)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	WANDB_MODE=$${WANDB_MODE:-disabled} $(PY) -m pytest -q tests

test-quick: install  ## the tests without the slow ones (DDP, subprocesses of the installed CLI)
	WANDB_MODE=$${WANDB_MODE:-disabled} $(PY) -m pytest -q -m "not slow" tests

bench-data: install  ## full-size H36M-format file set: load time and peak memory (targets < 20 s, < 4 GB)
	$(PY) benchmarks/bench_data.py $(ARGS)

bench: install  ## the leaderboard: every method vs a baseline with as many lifter steps, 3 seeds (ARGS=--quick: smoke)
	$(PY) benchmarks/leaderboard.py --group all $(ARGS)

bench-poseaug: install  ## baseline vs PoseAug and its ablation rows on the embedded benchmark, 3 seeds
	$(PY) benchmarks/leaderboard.py --group poseaug $(ARGS)

bench-adaptpose: install  ## baseline vs AdaptPose (27-frame VideoPose3D) + generator and camera ablations
	$(PY) benchmarks/leaderboard.py --group adaptpose --threads 1 --jobs 1 $(ARGS)

bench-evoskeleton: install  ## baseline vs EvoSkeleton (evolved data + cascade), 3 seeds
	$(PY) benchmarks/leaderboard.py --group evoskeleton $(ARGS)

bench-poseda: install  ## baseline vs PoseDA vs GPA only vs LPA only, 3 seeds, every test set
	$(PY) benchmarks/leaderboard.py --group poseda $(ARGS)

bench-poseda-extra: install  ## PoseDA's further rows (GP, 2D critic, row-0 GPA, per-domain GPA, RR+BL)
	$(PY) benchmarks/leaderboard.py --group poseda-extra $(ARGS)

bench-poseda-speed: install  ## PoseDA critic / G / lifter step at batch 1024 and epoch times (medians)
	WANDB_MODE=disabled $(PY) benchmarks/bench_poseda.py --threads 1 $(ARGS)

bench-syncadv: install  ## baseline vs SyncAdv-wKCS (Syn, wKCS), Sep and plain KCS, 3 seeds, every test set
	$(PY) benchmarks/leaderboard.py --group syncadv $(ARGS)

bench-syncadv-ablations: install  ## SyncAdv's other rows (no KCS, small turns, paper pairs, target 2D, hidden head)
	$(PY) benchmarks/leaderboard.py --group syncadv-ablations $(ARGS)

bench-syncadv-speed: install  ## median time of a SyncAdv iteration (critic + generator) at batch 1024
	WANDB_MODE=disabled $(PY) benchmarks/bench_syncadv_speed.py $(ARGS)

bench-speed: install  ## samples/s per phase vs the reference (ARGS="--reference-poseaug PATH"), plain loop, matmul ceiling
	WANDB_MODE=disabled $(PY) benchmarks/bench_speed.py $(ARGS)

bench-evolve: install  ## EvoSkeleton evolution speed (valid new poses/s, peak memory) from 50k and 500k poses
	$(PY) benchmarks/bench_evolve.py $(ARGS)

lint: install  ## ruff check and ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:  ## remove the venv and build/test caches
	rm -rf $(VENV) *.egg-info build dist .pytest_cache .ruff_cache
