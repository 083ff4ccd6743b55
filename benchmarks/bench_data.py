"""Load-time and memory benchmark of the H36M DataModule on a full-size synthetic file set.

Writes ``data_3d_h36m.npz`` and ``data_2d_h36m_gt.npz`` with the real dataset's size
(7 subjects x 30 sequences, 389,938 training and 135,836 test mocap frames, i.e. 1,559,752
and 543,344 poses over 4 cameras), then times ``H36MDataModule.setup()`` and reports the
peak resident memory of the process. Usage::

    python benchmarks/bench_data.py [--dir DIR] [--keep]   (an existing file set in DIR is reused)
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fixture writers

TRAIN_FRAMES = {"S1": 77_000, "S5": 78_000, "S6": 76_000, "S7": 79_000, "S8": 79_938}  # sums to 389,938
TEST_FRAMES = {"S9": 68_000, "S11": 67_836}  # sums to 135,836


def _spec() -> dict[str, dict[str, int]]:
    """30 sequences per subject (29 for S11, as in the real data) with the frame totals above."""
    spec = {}
    for subject, total in {**TRAIN_FRAMES, **TEST_FRAMES}.items():
        count = 29 if subject == "S11" else 30
        sizes = np.full(count, total // count)
        sizes[: total - sizes.sum()] += 1
        from data_modules.h36m import ACTIONS

        keys = [f"{ACTIONS[i // 2]} {i % 2 + 1}" for i in range(count)]
        spec[subject] = dict(zip(keys, (int(n) for n in sizes), strict=True))
    return spec


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _load(folder: Path) -> int:
    """Time ``setup()`` on the files in ``folder`` and report sizes and peak memory."""
    sys.stdout.flush()
    import torch

    torch.set_num_threads(1)
    from data_modules.h36m import H36MDataModule

    base_rss = _rss_mb()
    t0 = time.perf_counter()
    dm = H36MDataModule(str(folder), keypoints="gt")
    dm.setup()
    load = time.perf_counter() - t0
    sets = dm.sets
    assert sets is not None
    print(dm.describe())
    n_train = len(sets.train) + len(sets.val)
    n_test = sum(len(s) for s in sets.test.values())
    print(f"train+val poses: {n_train:,} (expected 1,559,752); test poses: {n_test:,} (expected 543,344)")
    print(f"load time: {load:.1f} s (target < 20 s)")
    print(f"peak RSS: {_rss_mb():.0f} MiB (before load {base_rss:.0f} MiB; target < 4096 MiB)")
    return 0 if load < 20 and _rss_mb() < 4096 and n_train == 1_559_752 else 1


def _generate(folder: Path) -> int:
    from fixtures import write_h36m

    t0 = time.perf_counter()
    write_h36m(folder, _spec(), variants=("gt",))
    sizes = {p.name: p.stat().st_size / 2**20 for p in folder.glob("*.npz")}
    print(
        f"generated in {time.perf_counter() - t0:.1f} s: "
        + ", ".join(f"{k} {v:.0f} MiB" for k, v in sizes.items())
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to write the files (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--generate-only", action="store_true", help="only write the file set to --dir")
    parser.add_argument("--load-only", action="store_true", help="only load an existing file set from --dir")
    args = parser.parse_args(argv)
    if args.load_only or args.generate_only:
        if not args.dir:
            parser.error("--load-only and --generate-only need --dir")
        return _load(Path(args.dir)) if args.load_only else _generate(Path(args.dir))
    tmp = None if args.dir else tempfile.TemporaryDirectory()
    folder = Path(args.dir or tmp.name)
    try:
        # each step in a fresh process: the peak memory reported is the loader's alone
        # (Linux keeps a parent's peak RSS in ru_maxrss of children it starts)
        me = [sys.executable, __file__, "--dir", str(folder)]
        if not (folder / "data_3d_h36m.npz").is_file() or not (folder / "data_2d_h36m_gt.npz").is_file():
            if subprocess.call([*me, "--generate-only"]) != 0:
                return 1
        return subprocess.call([*me, "--load-only"])
    finally:
        if tmp is not None and not args.keep:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
