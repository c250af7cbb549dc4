"""Thin Dagster assets: each loads its inputs, calls one stage function from `scoring/`, returns metadata."""

from assets.ablation import ablation_report, ablation_run
from assets.band_filter import band_filter
from assets.checks import DATA_CHECKS
from assets.curation import contamination, duplicates
from assets.curriculum import curriculum_shards, no_contaminated_problems_in_shards
from assets.difficulty import difficulty
from assets.exports import trainer_exports
from assets.irt import irt
from assets.predictor import predictor
from assets.problems import problems
from assets.report import report
from assets.rollouts import rollouts
from assets.skills import problem_skills, skill_profile, skill_vocabulary, stat_syn_problems
from assets.supervision import supervision
from assets.synthesis import (
    glan_problems,
    glan_syllabus,
    glan_taxonomy,
    restructured_problems,
    scalequest_problems,
    socratic_problems,
)
from assets.trainer import trainer

# Everything `build_all` and `gradus run` materialize for a student (switched-off methods return at once).
MAIN_ASSETS = [
    scalequest_problems,
    glan_taxonomy,
    glan_syllabus,
    glan_problems,
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
    skill_vocabulary,
    problem_skills,
    skill_profile,
    restructured_problems,
    stat_syn_problems,
    supervision,
    report,
]
# Socratic-Zero rounds are partitioned by round, so they run in their own job.
# The curriculum ablation trains many runs: only its own jobs materialize it.
ABLATION_ASSETS = [ablation_run, ablation_report]
ALL_ASSETS = [*MAIN_ASSETS, socratic_problems, *ABLATION_ASSETS]

ALL_CHECKS = [no_contaminated_problems_in_shards, *DATA_CHECKS]

__all__ = [
    "ALL_CHECKS",
    "ALL_ASSETS",
    "MAIN_ASSETS",
    "band_filter",
    "contamination",
    "curriculum_shards",
    "difficulty",
    "duplicates",
    "irt",
    "predictor",
    "problems",
    "report",
    "rollouts",
    "supervision",
    "trainer",
    "trainer_exports",
]
