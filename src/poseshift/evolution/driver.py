"""The evolution driver: grow a population of 3D poses by generations, then film it.

``poseshift evolve --config experiments/evoskeleton/<name>.yaml`` (``data_modules.commands.evolve``)
loads the initial poses, calls :func:`evolve` and :func:`finalize` here, films the result with
:func:`project_population` and writes it as a dataset file.
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

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from poseshift.evolution.operators import (
    choose_bones,
    crossover,
    mutate_bone_lengths,
    mutate_global,
    mutate_local,
    place_on_ground,
)
from poseshift.evolution.validity import AcceptAll, AkhterValidity, LearnedValidity
from poseshift.geometry.local_frames import LIMB_BONES, LocalPose, from_local
from poseshift.geometry.rig import CameraRig, render
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
    """What one generation did: candidates made, how many passed selection, sizes and time.

    Args:
        generation: generation index (1-based).
        pairs: parent pairs.
        candidates: children made.
        accepted: children that passed natural selection.
        population: population size after merging.
        seconds: wall time of the generation.
    """

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
    """The final population (initial individuals first) and per-generation statistics.

    Args:
        population: every individual, the initial ones first.
        initial_size: size of the initial population.
        stats: one entry per generation.
        seconds: total evolution time.
    """

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


# -- filming, natural selection -----------------------------------------------------------------
def project_population(
    joints: torch.Tensor, rig: CameraRig, seed: int = 0, group_size: int = 512, recentre: bool = True
) -> list[dict[str, np.ndarray]]:
    """Film world poses (M, 17, 3) with a :class:`~poseshift.geometry.rig.CameraRig`.

    The poses are cut into groups of ``group_size`` that the rig treats as one take each: one
    random placement and yaw per group, every pose seen by every camera of the rig. The loop
    is over groups, not individuals. With ``recentre`` every pose's root is first moved over
    the world origin, so a group is as compact as one pose and the rig's placement applies to
    each pose (source poses from walking clips are otherwise spread over metres and often
    leave the cameras' view). Returns one :func:`~poseshift.geometry.rig.render` output per
    group, with ``sequence`` and ``frame`` made unique across groups.
    """
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
    return parts


@dataclass
class ValidityConfig:
    """Natural selection.

    Args:
        kind: ``"auto"`` (default: ``"akhter"`` when ``constraints_dir`` is set, else
            ``"learned"``), ``"akhter"`` (the reference's Akhter & Black joint-angle limits, from
            their constraint files in ``constraints_dir``), ``"learned"`` (a deviation: an
            occupancy model learned from the initial population, see :func:`validity_note`), or
            ``"none"`` (accept every child).
        constraints_dir: folder with ``jointAngleModel_v2.npy`` and ``staticPose.npy``.
        model_path: a saved learned model to load instead of learning one.
        bin_deg: angular size of the direction bins (see :class:`LearnedValidity`).
        parent_bin_deg: size of the parent-direction bins of second-level limbs.
        margin_deg: accept directions within this angle of an occupied cell centre.
        parent_margin_deg: margin of the parent-direction condition.
        min_count: cells seen fewer times than this count as empty.
        reference_torso_typo: never reject torso-attached limbs (the reference's behaviour).
    """

    kind: str = "auto"
    constraints_dir: str | None = None
    model_path: str | None = None
    bin_deg: float = 6.0
    parent_bin_deg: float = 15.0
    margin_deg: float = 12.0
    parent_margin_deg: float = 15.0
    min_count: int = 1
    reference_torso_typo: bool = False


def resolved_kind(cfg: ValidityConfig) -> str:
    """The validity kind a config means (``auto``: Akhter's limits when their files are configured)."""
    if cfg.kind == "auto":
        return "akhter" if cfg.constraints_dir else "learned"
    return cfg.kind


def validity_note(cfg: ValidityConfig) -> str:
    """One line naming the natural selection used, and how it departs from the reference."""
    kind = resolved_kind(cfg)
    typo = " (with the reference's no-op torso check)" if cfg.reference_torso_typo else ""
    if kind == "akhter":
        return f"natural selection: Akhter & Black's joint-angle limits, as the reference{typo}"
    if kind == "none":
        return "natural selection: none (every child accepted; not the reference)"
    torso = (
        ""
        if cfg.reference_torso_typo
        else "; it also rejects torso-attached limbs, which the reference never does"
    )
    return (
        "natural selection: DEVIATION from the reference: a joint-angle occupancy model learned from "
        f"the source poses (+-{cfg.margin_deg:g} deg) instead of Akhter & Black's limits{torso}"
    )


def build_validity(cfg: ValidityConfig, initial: LocalPose):
    """The validity model a config asks for."""
    kind = resolved_kind(cfg)
    if kind == "none":
        return AcceptAll()
    if kind == "akhter":
        if not cfg.constraints_dir:
            raise ValueError("validity kind 'akhter' needs constraints_dir")
        return AkhterValidity(cfg.constraints_dir, reference_torso_typo=cfg.reference_torso_typo)
    if kind == "learned":
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
    raise ValueError(f"unknown validity kind {cfg.kind!r}; use 'auto', 'learned', 'akhter' or 'none'")
