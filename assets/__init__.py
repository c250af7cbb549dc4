"""Thin Dagster assets: each loads its inputs, calls one stage function from `scoring/`, returns metadata."""

from assets.band_filter import band_filter
from assets.checks import DATA_CHECKS
from assets.curriculum import curriculum_shards, no_contaminated_problems_in_shards
from assets.difficulty import difficulty
from assets.exports import trainer_exports
from assets.irt import irt
from assets.pool import contamination, duplicates
from assets.predictor import predictor
from assets.problems import problems
from assets.rollouts import rollouts
from assets.trainer import trainer

ALL_ASSETS = [
    problems,
    duplicates,
    contamination,
    rollouts,
    difficulty,
    band_filter,
    predictor,
    irt,
    curriculum_shards,
    trainer_exports,
    trainer,
]

ALL_CHECKS = [no_contaminated_problems_in_shards, *DATA_CHECKS]

__all__ = [
    "ALL_CHECKS",
    "ALL_ASSETS",
    "band_filter",
    "contamination",
    "curriculum_shards",
    "difficulty",
    "duplicates",
    "irt",
    "predictor",
    "problems",
    "rollouts",
    "trainer",
    "trainer_exports",
]
