"""The `supervision` asset through Dagster (`dg.materialize` on an ephemeral instance): off by default without
starting any model; switched on, its teacher is an OpenAI-compatible server on a real loopback socket (the engine
tests' fault server, answering `reply to <question>`), its tables land in the data root and the DuckDB catalog,
and a second materialization is served from the completion cache."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets import supervision
from pipelines.cli import main
from pipelines.materialize import materialize_project
from scoring.catalog import memory_catalog
from scoring.config import load_config
from scoring.storage import DataRoot
from tests.conftest import write_project
from tests.engines.fault_server import fault_server
from tests.scoring.supervision.fixtures import seed_tables

STUDENT = {
    "id": "sup",
    "engine": {"backend": "openai", "base_url": "http://127.0.0.1:9", "model": "student-m", "model_revision": "r1"},
}


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dg.MetadataValue]:
    [event] = result.asset_materializations_for_node("supervision")
    return event.metadata


def test_switched_off_by_default_nothing_runs(tmp_path: Path) -> None:
    config_path = write_project(tmp_path, tmp_path / "root", student=STUDENT)
    result = materialize_project(config_path, selection=[supervision])
    assert result.success
    metadata = _metadata(result)
    assert metadata["enabled"] == dg.MetadataValue.bool(False) and "supervision.enabled" in str(metadata["note"].value)
    assert not DataRoot(tmp_path / "root").has_table("supervision_traces")


def test_materializes_traces_selections_pairs_and_catalog_views(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "root")
    with fault_server("ok") as server:
        teacher = {"backend": "openai", "base_url": server.url, "model": "teacher-m", "model_revision": "t1"}
        supervision_section = {"enabled": True, "traces": {"samples": 2}}
        config_path = write_project(
            tmp_path, root.path, student=STUDENT, teacher=teacher, supervision=supervision_section
        )
        seed_tables(root, load_config(config_path), revision="r1")
        first = materialize_project(config_path, selection=[supervision])
        hits = len(server.hits)
        second = materialize_project(config_path, selection=[supervision])
        assert len(server.hits) == hits > 0, "the rerun is served by the completion cache"
    assert first.success and second.success
    metadata = _metadata(first)
    assert metadata["traces"] == dg.MetadataValue.int(8) and metadata["preference_pairs"] == dg.MetadataValue.int(4)
    # "reply to Compute 12 * 7." commits to the last number, 7: wrong; hard_first keeps the two failed problems
    assert metadata["traces_wrong"] == dg.MetadataValue.int(8)
    assert metadata["kept_hard_first_v1"] == dg.MetadataValue.int(2)
    assert metadata["kept_correct_only_v1"] == dg.MetadataValue.int(0)
    assert "select * from supervision_policies" in str(metadata["duckdb_query"].value)
    con, views = memory_catalog(root)
    assert {"supervision_traces", "supervision_selection", "preference_pairs", "supervision_policies"} <= set(views)
    [(model, traces)] = con.execute("select model_id, count(*) from supervision_traces group by all").fetchall()
    assert (model, traces) == ("teacher-m", 8)
    kept = con.execute("select kept from supervision_policies where policy = 'hard_first_v1'").fetchone()
    assert kept == (2,)
    assert (root.path / "exports" / "sup" / "supervision" / "hard_first_v1" / "trl" / "train-00000.parquet").is_file()


def test_gradus_supervise_prints_the_policies_and_refuses_when_off(tmp_path: Path, capsys) -> None:
    root = DataRoot(tmp_path / "root")
    off = write_project(tmp_path, root.path, name="off.yaml", student=STUDENT)
    assert main(["supervise", "--config", str(off)]) == 2
    assert "supervision.enabled: true" in capsys.readouterr().err
    with fault_server("ok") as server:
        teacher = {"backend": "openai", "base_url": server.url, "model": "teacher-m", "model_revision": "t1"}
        config_path = write_project(
            tmp_path, root.path, student=STUDENT, teacher=teacher, supervision={"enabled": True}
        )
        seed_tables(root, load_config(config_path), revision="r1")
        assert main(["supervise", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "traces: 16  preference pairs: 4  (ok)" in out
    assert "hard_first_v1" in out and "weak_to_strong_v1" in out and "correct_share" in out
