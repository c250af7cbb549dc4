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
    }
    for job_name in ("build_all", "regrade", "export"):
        job = defs.resolve_job_def(job_name)
        assert job.name == job_name
    assert set(defs.resolve_job_def("build_all").asset_layer.executable_asset_keys) == {
        key for key in defs.resolve_asset_graph().get_all_asset_keys()
    }


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
