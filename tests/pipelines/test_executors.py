"""The default job (`build_all`, its grading spine) on Dagster's multiprocess executor, selected by the project
config, on a real persistent instance and the real 0.5B CPU model: it succeeds, each step runs in its own
process, and it writes the same tables and shards as the in-process `dg.materialize` path."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets import contamination, curriculum_shards, difficulty, duplicates, problems, rollouts
from engines.config import EngineConfig, build_engine
from pipelines.definitions import build_definitions
from pipelines.execution import execute_project_job
from pipelines.materialize import materialize_project
from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL, linked_data_root, write_project

pytestmark = pytest.mark.slow
STUDENT = "mp-test"
TABLES = ("problems", "duplicates", "contamination", "rollouts", "verdict_audit", "difficulty", "curriculum")
# The grading path of build_all (and its asset checks): every step in its own process costs seconds of start-up
# on a shared 2-core machine, so the test runs this spine; the whole job was run the same way by hand.
SPINE = [problems, duplicates, contamination, rollouts, difficulty, curriculum_shards]


def _project(work: Path, name: str, models: Path, executor: str) -> Path:
    return write_project(
        work,
        linked_data_root(work / f"root-{name}", models),
        name=f"{name}.yaml",
        student={"id": STUDENT, "engine": {"backend": "embedded", "model": SMALL_MODEL, "n_ctx": 512}},
        sources={"procedural": [{"family": "arithmetic", "levels": [1, 3], "per_level": 1, "seed": 0}]},
        rollouts={"k": 2, "max_tokens": 24, "prompt": "answer_only_v1", "seed": 0},
        curriculum={"shard_size": 1},
        distributed={"executor": executor, "max_concurrent": 2},
    )


def _outputs(root: Path) -> dict[str, object]:
    data = DataRoot(root)
    tables = {name: data.read_all_partitions(name).to_pylist() for name in TABLES}
    shards = {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "shards").rglob("*.parquet"))}
    return tables | {"shards": shards}


@pytest.fixture(scope="module")
def models_dir(session_root: Path) -> Path:
    models = session_root / "models"
    build_engine(EngineConfig(model=SMALL_MODEL, n_ctx=256), models, None).close()  # assembles the GGUF once
    return models


def test_executor_follows_the_config(tmp_path: Path, models_dir: Path) -> None:
    multi = build_definitions(_project(tmp_path, "multi", models_dir, "multiprocess"))
    single = build_definitions(_project(tmp_path, "single", models_dir, "in_process"))
    assert multi.resolve_job_def("build_all").executor_def.name == "multiprocess"
    assert single.resolve_job_def("build_all").executor_def.name == "in_process"


def test_build_all_on_the_multiprocess_executor_matches_in_process(tmp_path: Path, models_dir: Path) -> None:
    multi = _project(tmp_path, "multi", models_dir, "multiprocess")
    with dg.instance_for_test() as instance:
        keys = [asset.key for asset in SPINE]
        result = execute_project_job(multi, "build_all", instance=instance, asset_selection=keys)
        assert result.success
        workers = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_WORKER_STARTED]
        assert len(workers) >= len(SPINE), "each step ran in its own process"
        meta = {k: v.value for k, v in result.asset_materializations_for_node("rollouts")[0].metadata.items()}
        assert meta["rollouts_this_run"] == 4 and meta["model_calls"] + meta["cache_hits"] == 4

    # The in-process path on a copy of the multiprocess run's completion cache: zero model calls, same outputs.
    single = _project(tmp_path, "single", models_dir, "in_process")
    shutil.copytree(tmp_path / "root-multi" / "cache", tmp_path / "root-single" / "cache")
    reference = materialize_project(single, selection=SPINE)
    assert reference.success
    meta = {k: v.value for k, v in reference.asset_materializations_for_node("rollouts")[0].metadata.items()}
    assert meta["model_calls"] == 0
    got, want = _outputs(tmp_path / "root-multi"), _outputs(tmp_path / "root-single")
    assert got["shards"] and got == want
