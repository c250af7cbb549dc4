"""The Dagster definitions load, every job resolves, and `dagster definitions validate` passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines.definitions import build_definitions

REPO = Path(__file__).resolve().parents[2]


def test_definitions_load_and_every_job_resolves() -> None:
    defs = build_definitions(REPO / "gradus.yaml")
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "problems",
        "duplicates",
        "contamination",
        "rollouts",
        "difficulty",
        "band_filter",
        "predictor",
        "irt",
        "curriculum_shards",
        "trainer_exports",
        "trainer",
        "scalequest_problems",
        "glan_taxonomy",
        "glan_syllabus",
        "glan_problems",
        "socratic_problems",
        "restructured_problems",
        "skill_vocabulary",
        "problem_skills",
        "skill_profile",
        "stat_syn_problems",
        "supervision",
        "ablation_run",
        "ablation_report",
        "report",
    }
    jobs = (
        "build_all",
        "regrade",
        "export",
        "synthesize_more",
        "socratic",
        "supervision_data",
        "curriculum_ablation",
        "ablation_summary",
    )
    for job_name in jobs:
        job = defs.resolve_job_def(job_name)
        assert job.name == job_name
    # build_all is everything but the round-partitioned Socratic asset and the ablation, which have their own jobs.
    assert {k.to_user_string() for k in defs.resolve_job_def("build_all").asset_layer.executable_asset_keys} == (
        keys - {"socratic_problems", "ablation_run", "ablation_report"}
    )
    ablation = defs.resolve_job_def("curriculum_ablation").asset_layer.executable_asset_keys
    assert {k.to_user_string() for k in ablation} == {"ablation_run"}
    assert {k.to_user_string() for k in defs.resolve_job_def("socratic").asset_layer.executable_asset_keys} == {
        "socratic_problems"
    }
    assert {k.to_user_string() for k in defs.resolve_job_def("supervision_data").asset_layer.executable_asset_keys} == {
        "supervision"
    }
    # the picture report is rebuilt by every build and regrade of a student
    regrade = defs.resolve_job_def("regrade").asset_layer.executable_asset_keys
    assert "report" in {k.to_user_string() for k in regrade}
    assert defs.resolve_sensor_def("grade_new_problems").name == "grade_new_problems"


def test_role_resources_follow_the_config(tmp_path: Path) -> None:
    config = tmp_path / "gradus.yaml"
    config.write_text(
        "student: {id: s, engine: {backend: embedded, model: qwen2.5-coder-0.5b-instruct-q4_k_m}}\n"
        "teacher: {backend: openai, base_url: 'http://127.0.0.1:9', model: big-teacher}\n"
    )
    resources = build_definitions(config).resources
    assert resources["student"].engine_config().model == "qwen2.5-coder-0.5b-instruct-q4_k_m"
    assert resources["teacher"].engine_config().model == "big-teacher"
    assert resources["generator"].engine_config().model == "big-teacher"  # follows the teacher by default


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "GRADUS_CONFIG": str(REPO / "gradus.yaml")}
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-m", "pipelines.definitions"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
