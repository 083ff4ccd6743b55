"""EvoSkeleton dataset evolution: operators, natural selection and the generation driver."""

from poseshift.evolution.driver import (
    EvolutionConfig,
    EvolutionResult,
    GenerationStats,
    SourceConfig,
    ValidityConfig,
    evolve,
    evolve_main,
    finalize,
    load_source,
    project_population,
    run_evolution,
)
from poseshift.evolution.operators import (
    CROSSOVER_SUBTREES,
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

__all__ = [
    "CROSSOVER_SUBTREES",
    "AcceptAll",
    "AkhterValidity",
    "EvolutionConfig",
    "EvolutionResult",
    "GenerationStats",
    "LearnedValidity",
    "SourceConfig",
    "ValidityConfig",
    "mean_bone_lengths",
    "camera_to_upright",
    "choose_bones",
    "crossover",
    "evolve",
    "evolve_main",
    "finalize",
    "load_source",
    "mutate_bone_lengths",
    "mutate_global",
    "mutate_local",
    "place_on_ground",
    "project_population",
    "run_evolution",
]
