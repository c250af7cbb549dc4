"""The trainer asset on a real Dagster instance: it trains on the shards in curriculum order (the run log and
metadata show the order), writes its steps and consumption to DuckDB, turns its rollouts into difficulty
evidence for the `<student>-train` student, and a rerun with the same config and curriculum reuses the run."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from assets import trainer
from pipelines.materialize import materialize_project
from scoring.curriculum.shards import CurriculumReader
from scoring.storage import DataRoot
from tests.conftest import trainer_project


def test_trainer_asset_consumes_in_order_and_writes_back_evidence(tmp_path: Path, smollm2_gguf: Path) -> None:
    path, config_path = trainer_project(tmp_path, smollm2_gguf)
    root = DataRoot(path)
    shard_dir = root.shards_dir / "tiny" / "easy_to_hard_v1"
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_project(config_path, selection=[trainer], instance=instance)
    assert result.success
    order = [row["position"] for row in CurriculumReader(shard_dir).rows()][:4]
    meta = {k: v.value for k, v in result.asset_materializations_for_node("trainer")[0].metadata.items()}
    assert meta["consumption_order"] == ", ".join(map(str, order)) and meta["steps"] and meta["unconsumed"] == 2
    logs = [
        e.message
        for e in instance.all_logs(result.run_id)
        if e.message and "consumed curriculum positions" in e.message
    ]
    assert logs and logs[0].endswith(str(order))

    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        assert con.execute("select step from training_steps order by step").fetchall() == [(1,), (2,)]
        consumed = con.execute("select position from training_consumption order by step, position").fetchall()
        assert [p for (p,) in consumed] == order
        evidence = con.execute(
            "select count(*), sum(n), min(student_revision) from difficulty where student_id = 'tiny-train'"
        ).fetchone()
        assert evidence[0] == 4 and evidence[1] == 16 and evidence[2] == meta["run_id"]
        rollouts = con.execute("select count(*) from rollouts where student_id = 'tiny-train'").fetchone()
        assert rollouts == (16,)

    again = materialize_project(config_path, selection=[trainer], instance=instance)
    again_meta = again.asset_materializations_for_node("trainer")[0].metadata
    assert again_meta["reused"].value == 1 and again_meta["run_id"].value == meta["run_id"]
