"""A student server that returns garbage: every failed call becomes a reject row with its reason, nothing is
stored as evidence, the problems are excluded as ungraded (not silently dropped), and the run still succeeds."""

from __future__ import annotations

from pathlib import Path

import duckdb

from pipelines.materialize import materialize_project
from tests.conftest import write_project
from tests.engines.servers import chat_body, scripted_server


def test_garbage_server_yields_reject_rows_and_ungraded_exclusions(tmp_path: Path) -> None:
    replies = [lambda body: (200, {}, b"<html>not json</html>")]
    with scripted_server(replies) as (url, received):
        sections = {
            "student": {
                "id": "flaky",
                # One request per sample (server_n false), so the requests count the samples retried; `n` per
                # request is covered in tests/engines/test_openai_faults.py.
                "engine": {
                    "backend": "openai",
                    "base_url": url,
                    "model": "m",
                    "max_retries": 1,
                    "timeout_s": 5,
                    "server_n": False,
                },
            },
            "sources": {"procedural": [{"family": "arithmetic", "levels": [1], "per_level": 2, "seed": 0}]},
            "rollouts": {"k": 2},
        }
        path = write_project(tmp_path, tmp_path / "root", **sections)
        result = materialize_project(path)
    assert result.success and len(received) == 4
    meta = result.asset_materializations_for_node("rollouts")[0].metadata
    assert meta["verdict_error"].value == 4 and meta["failed_calls"].value == 4
    with duckdb.connect(str(tmp_path / "root" / "catalog.duckdb"), read_only=True) as con:
        rejects = con.execute("select stage, reason from rejects where stage = 'rollouts'").fetchall()
        assert len(rejects) == 4 and all("invalid JSON" in reason for _, reason in rejects)
        excluded = con.execute("select reason from curriculum_excluded").fetchall()
        assert len(excluded) == 2 and all(r.startswith("ungraded") for (r,) in excluded)
        assert con.execute("select count(*) from rollouts").fetchone() == (0,), "failures are not evidence"

    # The server recovers: the next run retries exactly the failed samples and grades them.
    with scripted_server([lambda body: (200, {}, chat_body("\\boxed{1}"))]) as (url, received):
        sections["student"]["engine"]["base_url"] = url
        write_project(tmp_path, tmp_path / "root", **sections)
        again = materialize_project(path)
    assert again.success and len(received) == 4
    with duckdb.connect(str(tmp_path / "root" / "catalog.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from rollouts").fetchone() == (4,)
        assert con.execute("select count(*) from rejects where stage = 'rollouts'").fetchone() == (0,)
