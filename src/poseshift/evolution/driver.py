"""The evolution driver: grow a population of 3D poses by generations, then film it as a PoseSet.

``poseshift evolve --config experiments/evoskeleton/<name>.yaml`` calls :func:`evolve_main`.
The work per generation is batched over all parent pairs (chunked to ``chunk_size`` pairs so
memory stays bounded); the population lives in the hierarchical representation in
preallocated tensors, so parents are never re-encoded. Algorithm 1 of the paper with the
reference's defaults (METHODS.md 5.3):

1. pick ``2 floor(F P)`` distinct individuals at random (F = 0.05) and pair them;
2. crossover, then local mutation of the swapped bones, then natural selection (validity);
3. global rotation of some children, merge into the population;
4. repeat until the population reaches ``target_ratio`` x the initial size;
5. when saving: bone-length mutation from templates, placing on the ground, projection
   with a camera rig (the four H36M cameras by default).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from poseshift.evolution.operators import (
    camera_to_upright,
    choose_bones,
    crossover,
    mean_bone_lengths,
    mutate_bone_lengths,
    mutate_global,
    mutate_local,
    place_on_ground,
)
from poseshift.evolution.validity import AcceptAll, AkhterValidity, LearnedValidity
from poseshift.geometry.local_frames import LIMB_BONES, LocalPose, from_local, to_local
from poseshift.geometry.skeleton import NUM_BONES

log = logging.getLogger(__name__)


@dataclass
class EvolutionConfig:
    """Hyper-parameters of the evolution (reference defaults from ``libs/evolution/parameter.py``).

    Args:
        target_ratio: stop once the population is at least this multiple of the initial one (T).
        target_size: absolute target population size; overrides ``target_ratio`` when set.
        min_generations: run at least this many generations (G).
        max_generations: give up after this many (e.g. when validity rejects nearly everything).
        parent_fraction: fraction F of the population paired per generation (2 F P parents).
        crossover: apply crossover (sub-tree exchange).
        include_head: let crossover swap the neck/head too (the reference never does).
        lengths_from: children take the ``"other"`` parent's limb lengths (reference) or their ``"own"``.
        mutation: apply local mutation.
        mutation_kind: ``"axis"`` (code: rotation about one local axis) or ``"spherical"``
            (paper: theta/phi noise).
        mutation_candidates: ``"swapped"`` bones (reference) or all ``"limbs"`` (always the
            case without crossover).
        mutation_choice: ``"each"`` candidate with probability ``mutation_rate`` (reference) or
            ``"one"`` random candidate per child (paper).
        mutation_rate: MRL, 0.3.
        mutation_sigma_deg: SDL, 10 degrees.
        global_rate: MRG, probability of rotating a child about the hip, 0.1.
        global_sigma_deg: angle sigma; 60 is what the reference really uses (its SDG = 30 is ignored).
        global_axes: world axes the global rotation may pick from.
        bone_length_rate: probability of replacing an individual's bone lengths by a template
            when saving (1 - MBLR = 0.5); 0 disables.
        bone_length_children_only: leave the initial population's lengths alone.
        ground: place every pose on the floor (lowest joint at N(ground_height, ground_std) m).
        ground_height: mean height of the lowest joint, metres (reference 20 mm).
        ground_std: its standard deviation (reference 3 mm).
        chunk_size: parent pairs processed at once (bounds the working memory).
    """

    target_ratio: float = 2.5
    target_size: int | None = None
    min_generations: int = 1
    max_generations: int = 200
    parent_fraction: float = 0.05
    crossover: bool = True
    include_head: bool = False
    lengths_from: str = "other"
    mutation: bool = True
    mutation_kind: str = "axis"
    mutation_candidates: str = "swapped"
    mutation_choice: str = "each"
    mutation_rate: float = 0.3
    mutation_sigma_deg: float = 10.0
    global_rate: float = 0.1
    global_sigma_deg: float = 60.0
    global_axes: str = "xyz"
    bone_length_rate: float = 0.5
    bone_length_children_only: bool = False
    ground: bool = True
    ground_height: float = 0.02
    ground_std: float = 0.003
    chunk_size: int = 65536

    def __post_init__(self) -> None:
        if self.target_ratio < 1 and self.target_size is None:
            raise ValueError(f"target_ratio must be >= 1, got {self.target_ratio}")
        if not 0 < self.parent_fraction <= 0.5:
            raise ValueError(f"parent_fraction must be in (0, 0.5], got {self.parent_fraction}")
        if self.mutation_candidates not in ("swapped", "limbs"):
            raise ValueError(
                f"mutation_candidates must be 'swapped' or 'limbs', got {self.mutation_candidates!r}"
            )
        if not self.crossover and not self.mutation:
            raise ValueError("with neither crossover nor mutation the children would be copies")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be positive")


@dataclass
class GenerationStats:
    """What one generation did: candidates made, how many passed selection, sizes and time."""

    generation: int
    pairs: int
    candidates: int
    accepted: int
    population: int
    seconds: float

    @property
    def acceptance(self) -> float:
        return self.accepted / max(1, self.candidates)


@dataclass
class EvolutionResult:
    """The final population (initial individuals first) and per-generation statistics."""

    population: LocalPose
    initial_size: int
    stats: list[GenerationStats] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def new_poses(self) -> int:
        return len(self.population) - self.initial_size


class _Population:
    """Preallocated storage of a growing population in the hierarchical representation."""

    def __init__(self, initial: LocalPose, capacity: int) -> None:
        n = len(initial)
        dt = initial.directions.dtype
        self.directions = torch.empty(capacity, NUM_BONES, 3, dtype=dt)
        self.lengths = torch.empty(capacity, NUM_BONES, dtype=dt)
        self.root = torch.empty(capacity, 3, dtype=dt)
        self.size = 0
        self.append(initial)
        assert self.size == n

    def append(self, poses: LocalPose) -> int:
        k = min(len(poses), len(self.directions) - self.size)
        s = slice(self.size, self.size + k)
        self.directions[s] = poses.directions[:k]
        self.lengths[s] = poses.lengths[:k]
        self.root[s] = poses.root[:k]
        self.size += k
        return k

    def get(self, idx: torch.Tensor) -> LocalPose:
        return LocalPose(self.directions[idx], self.lengths[idx], self.root[idx])

    def view(self) -> LocalPose:
        s = slice(0, self.size)
        return LocalPose(self.directions[s], self.lengths[s], self.root[s])


def _children(
    father: LocalPose, mother: LocalPose, cfg: EvolutionConfig, validity, gen: torch.Generator
) -> tuple[LocalPose, int]:
    """Offspring of paired parents that pass selection (crossover, mutation, validity, rotation)."""
    n = len(father)
    if cfg.crossover:
        son, daughter, swapped = crossover(father, mother, gen, cfg.include_head, cfg.lengths_from)
    else:
        son, daughter = father, mother
        swapped = torch.zeros(n, NUM_BONES, dtype=torch.bool)
    kids = LocalPose(
        torch.cat([son.directions, daughter.directions]),
        torch.cat([son.lengths, daughter.lengths]),
        torch.cat([son.root, daughter.root]),
    )
    if cfg.mutation:
        if cfg.mutation_candidates == "limbs" or not cfg.crossover:
            cand = torch.zeros(2 * n, NUM_BONES, dtype=torch.bool)
            cand[:, list(LIMB_BONES)] = True
        else:
            cand = torch.cat([swapped, swapped])
        chosen = choose_bones(cand, cfg.mutation_rate, cfg.mutation_choice, gen)
        kids = LocalPose(
            mutate_local(kids.directions, chosen, cfg.mutation_sigma_deg, cfg.mutation_kind, gen),
            kids.lengths,
            kids.root,
        )
    joints = from_local(kids) if isinstance(validity, AkhterValidity) else None
    keep = validity(kids, joints)
    kids = kids.index(keep)
    if cfg.mutation and cfg.global_rate > 0:
        kids, _ = mutate_global(kids, cfg.global_rate, cfg.global_sigma_deg, gen, cfg.global_axes)
    return kids, 2 * n


def evolve(
    initial: LocalPose,
    cfg: EvolutionConfig,
    validity=None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> EvolutionResult:
    """Evolve ``initial`` (N poses, hierarchical representation) until the target size.

    ``validity`` is a callable ``(LocalPose, joints or None) -> (N,) bool`` (default: accept
    everything). The acceptance rate of every generation is logged and returned in ``stats``.
    """
    validity = validity if validity is not None else AcceptAll()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    n0 = len(initial)
    target = cfg.target_size if cfg.target_size is not None else math.ceil(cfg.target_ratio * n0)
    target = max(target, n0)
    pop = _Population(initial, target)
    stats: list[GenerationStats] = []
    start = time.perf_counter()
    bar = _progress(progress, target, n0)
    g = 0
    while (pop.size < target or g < cfg.min_generations) and g < cfg.max_generations:
        g += 1
        t0 = time.perf_counter()
        size = pop.size
        pairs = max(1, int(cfg.parent_fraction * size))
        chosen = torch.randperm(size, generator=gen)[: 2 * pairs]
        accepted = candidates = 0
        for lo in range(0, pairs, cfg.chunk_size):
            hi = min(pairs, lo + cfg.chunk_size)
            kids, made = _children(
                pop.get(chosen[lo:hi]), pop.get(chosen[pairs + lo : pairs + hi]), cfg, validity, gen
            )
            candidates += made
            accepted += len(kids)
            # appended after the generation's parents were drawn; a full store drops the rest
            pop.append(kids)
        st = GenerationStats(g, pairs, candidates, accepted, pop.size, time.perf_counter() - t0)
        stats.append(st)
        log.info(
            "generation %d: %d pairs, %d/%d children valid (acceptance %.1f%%), population %d",
            g,
            pairs,
            accepted,
            candidates,
            100 * st.acceptance,
            pop.size,
        )
        if bar is not None:
            bar[0].update(bar[1], completed=pop.size, description=f"gen {g} acc {100 * st.acceptance:.0f}%")
        if accepted == 0 and g >= cfg.min_generations:
            log.warning("generation %d produced no valid child; stopping early", g)
            break
    if bar is not None:
        bar[0].stop()
    if pop.size < target:
        log.warning("evolution stopped at %d poses, short of the target %d", pop.size, target)
    return EvolutionResult(pop.view(), n0, stats, time.perf_counter() - start)


def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    task = bar.add_task("evolving", total=total, completed=done)
    bar.start()
    return bar, task


def finalize(
    result: EvolutionResult,
    cfg: EvolutionConfig,
    templates: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """World joints (M, 17, 3) of the population after bone-length mutation and ground placement (chunked)."""
    gen = generator if generator is not None else torch.Generator().manual_seed(1)
    pop = result.population
    out = torch.empty(len(pop), 17, 3, dtype=torch.float32)
    for lo in range(0, len(pop), cfg.chunk_size):
        hi = min(len(pop), lo + cfg.chunk_size)
        chunk = pop.index(slice(lo, hi))
        lengths = chunk.lengths
        if templates is not None and cfg.bone_length_rate > 0:
            new = mutate_bone_lengths(lengths, templates, cfg.bone_length_rate, gen)
            if cfg.bone_length_children_only:
                is_child = torch.arange(lo, hi) >= result.initial_size
                new = torch.where(is_child[:, None], new, lengths)
            lengths = new
        joints = from_local(LocalPose(chunk.directions, lengths, chunk.root))
        if cfg.ground:
            joints = place_on_ground(joints, cfg.ground_height, cfg.ground_std, 2, gen)
        out[lo:hi] = joints.float()
    return out


# -- sources, rig, output ----------------------------------------------------------------------
@dataclass
class SourceConfig:
    """Where the initial population comes from.

    Args:
        kind: ``"mocap"``: world frames of the embedded benchmark's source clips (their
            training blocks); ``"pose_set"``: the camera-frame 3D of a PoseSet npz (turned
            upright with :func:`camera_to_upright`); ``"world"``: an npz with ``joints``
            (N, 17, 3), z-up world metres, and optionally ``subject`` (N,); ``"h36m"``: the
            world 3D of Human3.6M (VideoPose3D's ``data_3d_h36m.npz``, as read by
            :mod:`data_modules.h36m`), every frame of the chosen subjects.
        path: the npz file for ``pose_set`` / ``world``; for ``h36m`` the folder holding
            ``data_3d_h36m.npz`` (or the file itself).
        clips: mocap clips (``None`` = the benchmark's source clips).
        train_fraction: leading fraction of each mocap clip used (the benchmark's train block).
        fps: mocap frame rate (the benchmark's).
        subjects: keep only these subjects, e.g. ``["S1"]`` (``h36m``) or ``["1"]`` (the integer
            ids of ``pose_set`` / ``world`` files, as strings).
        stride: keep every ``stride``-th frame (``h36m``; the reference uses every frame).
        fraction: keep this random fraction of the poses (e.g. 0.01 for the reference's 0.01S1).
    """

    kind: str = "mocap"
    path: str | None = None
    clips: list[str] | None = None
    train_fraction: float = 0.7
    fps: float = 50.0
    subjects: list[str] | None = None
    stride: int = 1
    fraction: float = 1.0


def load_source(src: SourceConfig, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial world joints (N, 17, 3) float64 and group ids (N,) (subjects, or clips for mocap)."""
    if src.kind == "mocap":
        from data_modules.deepmimic import load_clip
        from data_modules.mocap import SOURCE_CLIPS

        clips = src.clips or list(SOURCE_CLIPS)
        parts, groups = [], []
        for i, name in enumerate(clips):
            world = load_clip(name, fps=src.fps)
            world = world[: int(round(src.train_fraction * len(world)))]
            parts.append(world)
            groups.append(np.full(len(world), i))
        joints, group = np.concatenate(parts), np.concatenate(groups)
    elif src.kind in ("pose_set", "world"):
        if not src.path:
            raise ValueError(f"source kind {src.kind!r} needs a path")
        data = np.load(src.path, allow_pickle=False)
        if src.kind == "world":
            joints = data["joints"]
        else:
            joints = camera_to_upright(torch.from_numpy(data["pose3d"] + data["root3d"][:, None])).numpy()
        group = data["subject"] if "subject" in data.files else np.zeros(len(joints), dtype=np.int64)
    elif src.kind == "h36m":
        from data_modules.h36m import load_positions_3d
        from data_modules.skeletons import get_layout

        if not src.path:
            raise ValueError("source kind 'h36m' needs a path (folder with data_3d_h36m.npz)")
        path = Path(src.path)
        positions = load_positions_3d(path / "data_3d_h36m.npz" if path.is_dir() else path)
        subjects = src.subjects or sorted(positions)
        missing = [s for s in subjects if s not in positions]
        if missing:
            raise ValueError(f"{path}: no subject(s) {missing}; present: {sorted(positions)}")
        to17 = list(get_layout("h36m32").to_h36m17)
        parts, groups = [], []
        for s in subjects:
            for key in sorted(positions[s]):
                world = np.asarray(positions[s][key])[:: src.stride][:, to17]
                parts.append(world)
                groups.append(np.full(len(world), int(s.lstrip("S"))))
        joints, group = np.concatenate(parts), np.concatenate(groups)
        src = SourceConfig(**{**asdict(src), "subjects": None})  # already selected
    else:
        raise ValueError(f"unknown source kind {src.kind!r}; use 'mocap', 'h36m', 'pose_set' or 'world'")
    keep = np.ones(len(joints), dtype=bool)
    if src.subjects is not None:
        keep &= np.isin(group.astype(str), [str(s).lstrip("S") for s in src.subjects])
    if src.fraction < 1:
        rng = np.random.default_rng(seed)
        keep &= rng.random(len(joints)) < src.fraction
    if not keep.any():
        raise ValueError(f"the source {src} selects no poses")
    return torch.from_numpy(np.asarray(joints[keep], dtype=np.float64)), torch.from_numpy(
        np.asarray(group[keep], dtype=np.int64)
    )


def project_population(
    joints: torch.Tensor, rig, seed: int = 0, group_size: int = 512, recentre: bool = True
):
    """Film world poses (M, 17, 3) with a :class:`data_modules.rig.CameraRig` into a PoseSet.

    The poses are cut into groups of ``group_size`` that the rig treats as one take each: one
    random placement and yaw per group, every pose seen by every camera of the rig. The loop
    is over groups, not individuals. With ``recentre`` every pose's root is first moved over
    the world origin, so a group is as compact as one pose and the rig's placement applies to
    each pose (source poses from walking clips are otherwise spread over metres and often
    leave the cameras' view).
    """
    from data_modules.rig import pose_set_from_renders, render

    rng = np.random.default_rng(seed)
    world = joints.double().numpy().copy()
    if recentre:
        world[..., :2] -= world[:, :1, :2]
    parts = []
    for i, lo in enumerate(range(0, len(world), group_size)):
        group = world[lo : lo + group_size]
        out = render(group, rig, rng, takes=1, label=f"evolved group {i}")
        out["sequence"] = out["sequence"] + i * rig.num_cameras
        out["frame"] = out["frame"] + lo
        parts.append(out)
    return pose_set_from_renders(parts, "evolved", ("evolved",), source="poseshift evolve")


@dataclass
class ValidityConfig:
    """Natural selection.

    Args:
        kind: ``"learned"`` (default; learned from the initial population), ``"akhter"``
            (original constraint files in ``constraints_dir``), or ``"none"``.
        constraints_dir: folder with ``jointAngleModel_v2.npy`` and ``staticPose.npy``.
        model_path: a saved learned model to load instead of learning one.
        bin_deg, parent_bin_deg, margin_deg, parent_margin_deg, min_count: see
            :class:`LearnedValidity`.
        reference_torso_typo: never reject torso-attached limbs (the reference's behaviour).
    """

    kind: str = "learned"
    constraints_dir: str | None = None
    model_path: str | None = None
    bin_deg: float = 6.0
    parent_bin_deg: float = 15.0
    margin_deg: float = 12.0
    parent_margin_deg: float = 15.0
    min_count: int = 1
    reference_torso_typo: bool = False


def build_validity(cfg: ValidityConfig, initial: LocalPose):
    """The validity model a config asks for."""
    if cfg.kind == "none":
        return AcceptAll()
    if cfg.kind == "akhter":
        if not cfg.constraints_dir:
            raise ValueError("validity kind 'akhter' needs constraints_dir")
        return AkhterValidity(cfg.constraints_dir, reference_torso_typo=cfg.reference_torso_typo)
    if cfg.kind == "learned":
        if cfg.model_path:
            return LearnedValidity.load(cfg.model_path, cfg.reference_torso_typo)
        model = LearnedValidity(
            cfg.bin_deg,
            cfg.parent_bin_deg,
            cfg.margin_deg,
            cfg.parent_margin_deg,
            cfg.min_count,
            cfg.reference_torso_typo,
        )
        return model.fit(initial)
    raise ValueError(f"unknown validity kind {cfg.kind!r}; use 'learned', 'akhter' or 'none'")


def run_evolution(
    source: SourceConfig,
    evolution: EvolutionConfig,
    validity: ValidityConfig,
    output: str,
    rig=None,
    seed: int = 0,
    group_size: int = 512,
    progress: bool = True,
    threads: int | None = None,
    bone_templates: str | None = None,
) -> dict:
    """Load the source, evolve, finalize, project and write ``output`` (PoseSet npz) plus a JSON summary.

    ``bone_templates``: an .npy / .npz (key ``templates``) of (K, 16) bone lengths in metres
    for the bone-length mutation; by default the mean lengths of each source subject.
    """
    from data_modules.rig import CameraRig

    if threads:
        torch.set_num_threads(threads)
    rig = rig if rig is not None else CameraRig.h36m()
    joints, groups = load_source(source, seed)
    initial = to_local(joints)
    model = build_validity(validity, initial)
    initial = LocalPose(initial.directions.float(), initial.lengths.float(), initial.root.float())
    if hasattr(model, "per_bone") and not isinstance(model, AcceptAll):
        log.info(
            "validity model accepts %.1f%% of the initial poses",
            100
            * float(
                model(initial, from_local(initial) if isinstance(model, AkhterValidity) else None)
                .float()
                .mean()
            ),
        )
    gen = torch.Generator().manual_seed(seed)
    result = evolve(initial, evolution, model, gen, progress=progress)
    if bone_templates:
        loaded = np.load(bone_templates)
        loaded = loaded["templates"] if hasattr(loaded, "files") else loaded
        templates = torch.as_tensor(np.asarray(loaded, dtype=np.float32)).reshape(-1, NUM_BONES)
    else:
        templates = mean_bone_lengths(initial.lengths, groups)
    world = finalize(result, evolution, templates, gen)
    t0 = time.perf_counter()
    poses = project_population(world, rig, seed, group_size)
    projection_s = time.perf_counter() - t0
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    poses.save(out)
    summary = {
        "output": str(out),
        "initial": result.initial_size,
        "population": len(result.population),
        "new_poses": result.new_poses,
        "pairs_2d3d": len(poses),
        "evolution_seconds": result.seconds,
        "projection_seconds": projection_s,
        "valid_new_poses_per_second": result.new_poses / max(result.seconds, 1e-9),
        "generations": [asdict(s) | {"acceptance": s.acceptance} for s in result.stats],
        "config": {
            "source": asdict(source),
            "evolution": asdict(evolution),
            "validity": asdict(validity),
            "rig": asdict(rig),
            "seed": seed,
        },
    }
    Path(str(out) + ".json").write_text(json.dumps(summary, indent=1))
    log.info(
        "wrote %d 2D-3D pairs from %d poses (%d new) to %s",
        len(poses),
        len(result.population),
        result.new_poses,
        out,
    )
    return summary


def evolve_main(argv: list[str] | None = None) -> int:
    """``poseshift evolve --config experiments/evoskeleton/<name>.yaml [--key value ...]``.

    Returns 0 on success (the exit status).
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    from data_modules.rig import CameraRig

    parser = ArgumentParser(prog="poseshift evolve", description="Evolve a 3D pose dataset (EvoSkeleton).")
    parser.add_argument("--config", action=ActionConfigFile, help="YAML file with the options below")
    parser.add_argument("--source", type=SourceConfig, default=SourceConfig(), help="initial population")
    parser.add_argument(
        "--evolution", type=EvolutionConfig, default=EvolutionConfig(), help="evolution settings"
    )
    parser.add_argument("--validity", type=ValidityConfig, default=ValidityConfig(), help="natural selection")
    parser.add_argument(
        "--rig", type=CameraRig, default=CameraRig.h36m(), help="cameras for the 2D projection"
    )
    parser.add_argument("--output", type=str, default="runs/evolved/evolved.npz", help="PoseSet npz to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--group_size", type=int, default=512, help="poses per camera placement when filming")
    parser.add_argument("--progress", type=bool, default=True, help="show a progress bar")
    parser.add_argument("--threads", type=int | None, default=None, help="torch CPU threads")
    parser.add_argument(
        "--bone_templates",
        type=str | None,
        default=None,
        help="(K, 16) bone lengths in metres (.npy, or .npz key 'templates') for the bone-length "
        "mutation; default: the mean lengths of each source subject",
    )
    cfg = parser.parse_args(argv)
    init = parser.instantiate(cfg)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = run_evolution(
        init.source,
        init.evolution,
        init.validity,
        init.output,
        init.rig,
        init.seed,
        init.group_size,
        init.progress,
        init.threads,
        init.bone_templates,
    )
    print(
        f"evolved {summary['initial']} -> {summary['population']} poses "
        f"in {summary['evolution_seconds']:.1f} s "
        f"({summary['valid_new_poses_per_second']:.0f} valid new poses/s); "
        f"{summary['pairs_2d3d']} 2D-3D pairs written to {summary['output']}",
        flush=True,
    )
    return 0
