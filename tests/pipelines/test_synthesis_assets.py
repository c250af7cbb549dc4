"""Synthesis and skill assets through Dagster on the real 0.5B model: GLAN's three levels and the skills
assets materialize with funnel metadata, accepted problems reach `problems`, the tables are DuckDB views, and a
second materialization makes zero model calls. The completion cache is the session's, so repeated prompts are
paid for once per test session."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets import problem_skills, problems, skill_vocabulary
from assets.synthesis import glan_problems, glan_syllabus, glan_taxonomy
from pipelines.materialize import materialize_project
from scoring.catalog import refresh_catalog
from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL, write_project

CONFIG = {
    "student": {"id": "synth-test", "engine": {"backend": "embedded", "model": SMALL_MODEL, "n_ctx": 1024}},
    "sources": {"procedural": [{"family": "arithmetic", "levels": [1], "per_level": 2, "seed": 0}]},
    "synthesis": {
        "answers": {"k": 2, "min_votes": 1, "max_tokens": 160},
        "glan": {
            "enabled": True,
            "disciplines": 1,
            "subjects_per_discipline": 1,
            "sessions_per_subject": 2,
            "concepts_per_session": 2,
            "questions": 2,
            "list_max_tokens": 320,
            "question_max_tokens": 128,
            "answer_max_tokens": 160,
        },
    },
    "skills": {"enabled": True, "propose_from": 0},
    "decontamination": {"benchmarks": []},
}


@pytest.fixture(scope="module")
def synth_root(session_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth-assets")
    # Share the session's assembled model and completion cache, not its tables.
    (root / "models").symlink_to(session_root / "models", target_is_directory=True)
    (session_root / "cache").mkdir(exist_ok=True)
    (root / "cache").symlink_to(session_root / "cache", target_is_directory=True)
    return root


def _materialize(config_path: Path) -> dg.ExecuteInProcessResult:
    selection = [glan_taxonomy, glan_syllabus, glan_problems, problems, skill_vocabulary, problem_skills]
    return materialize_project(config_path, selection=selection)


def test_glan_and_skills_assets_materialize_with_metadata(synth_root: Path) -> None:
    config_path = write_project(synth_root, synth_root, **CONFIG)
    first = _materialize(config_path)
    assert first.success

    syllabus = first.asset_materializations_for_node("glan_syllabus")[0].metadata
    assert syllabus["dagster/row_count"].value >= 1
    assert "duckdb_query" in syllabus
    made = first.asset_materializations_for_node("glan_problems")[0].metadata
    assert "funnel" in made and "duckdb_query" in made
    accepted = made["dagster/row_count"].value

    pool = first.asset_materializations_for_node("problems")[0].metadata
    assert pool["synthesized"].value == accepted  # every accepted GLAN problem joined the pool
    vocabulary = first.asset_materializations_for_node("skill_vocabulary")[0].metadata
    assert vocabulary["dagster/row_count"].value >= 1  # the arithmetic family's own skill at least

    views = refresh_catalog(DataRoot(synth_root))
    assert {"synthesis_log", "synthesized_problems", "glan_syllabus", "skills", "problem_skills"} <= set(views)
    with duckdb.connect(str(synth_root / "catalog.duckdb"), read_only=True) as con:
        logged = con.execute("select count(*) from synthesis_log where method = 'glan'").fetchone()[0]
        labelled = con.execute("select count(distinct problem_id) from problem_skills").fetchone()[0]
    assert logged >= accepted and logged > 0
    assert labelled >= 2  # both arithmetic problems carry their family's skill

    second = _materialize(config_path)
    assert second.success
    for node in ("glan_taxonomy", "glan_syllabus", "glan_problems", "problem_skills"):
        metadata = second.asset_materializations_for_node(node)[0].metadata
        if "model_calls" in metadata:
            assert metadata["model_calls"].value == 0, node
