"""EvoSkeleton dataset evolution: operators, natural selection and the generation driver.

``poseshift evolve`` (``data_modules.commands.evolve``) loads the initial poses and writes the
result; everything in between is here.
"""

from poseshift.evolution.driver import (
    EvolutionConfig,
    EvolutionResult,
    GenerationStats,
    ValidityConfig,
    build_validity,
    evolve,
    finalize,
    project_population,
    resolved_kind,
    validity_note,
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
    "ValidityConfig",
    "build_validity",
    "mean_bone_lengths",
    "camera_to_upright",
    "choose_bones",
    "crossover",
    "evolve",
    "finalize",
    "mutate_bone_lengths",
    "mutate_global",
    "mutate_local",
    "place_on_ground",
    "project_population",
    "resolved_kind",
    "validity_note",
]
