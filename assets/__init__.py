"""Thin Dagster assets: each loads its inputs, calls one stage function from `scoring/`, returns metadata."""

from assets.band_filter import band_filter
from assets.curriculum import curriculum_shards
from assets.difficulty import difficulty
from assets.irt import irt
from assets.predictor import predictor
from assets.problems import problems
from assets.rollouts import rollouts

ALL_ASSETS = [problems, rollouts, difficulty, band_filter, predictor, irt, curriculum_shards]

__all__ = [
    "ALL_ASSETS",
    "band_filter",
    "curriculum_shards",
    "difficulty",
    "irt",
    "predictor",
    "problems",
    "rollouts",
]
