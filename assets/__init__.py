"""Thin Dagster assets: each loads its inputs, calls one stage function from `scoring/`, returns metadata."""

from assets.curriculum import curriculum_shards
from assets.difficulty import difficulty
from assets.problems import problems
from assets.rollouts import rollouts

ALL_ASSETS = [problems, rollouts, difficulty, curriculum_shards]

__all__ = ["ALL_ASSETS", "curriculum_shards", "difficulty", "problems", "rollouts"]
