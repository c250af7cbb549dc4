"""The pool between sources and grading, through Dagster on a real data root: a planted duplicate and a
planted GSM8K-test item are kept out of rollouts and shards, each with its reason, and the shard check passes."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import yaml

from engines.models import EMBEDDED_MODELS, ensure_model
from pipelines.materialize import materialize_project
from scoring.pool import contaminated_in_shards
from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL


def test_planted_duplicate_and_benchmark_leak_never_reach_the_shards(
    session_root: Path, shared_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    ensure_model(EMBEDDED_MODELS[SMALL_MODEL], session_root / "models")
    (root / "models").symlink_to(session_root / "models")
    train = [json.loads(line) for line in (shared_dir / "data/gsm8k/train.jsonl").read_text().splitlines()[:2]]
    leak = json.loads((shared_dir / "data/gsm8k/test.jsonl").read_text().splitlines()[7])
    # same text up to case and spacing: a new problem id, but an exact duplicate after normalization
    respaced = {**train[0], "question": train[0]["question"].lower().replace(" ", "  ")}
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join(json.dumps(row) for row in (*train, respaced, leak)) + "\n")
    config = {
        "data_root": str(root),
        "student": {"id": "pool-test", "engine": {"model": SMALL_MODEL, "n_ctx": 1024}},
        "sources": {"imports": [{"preset": "gsm8k", "path": str(seeds)}]},
        "rollouts": {"k": 2, "max_tokens": 16, "prompt": "answer_only_v1"},
        "decontamination": {
            "benchmarks": [{"name": "gsm8k_test", "path": str(shared_dir / "data/gsm8k/test.jsonl"), "preset": "gsm8k"}]
        },
        "curriculum": {"shard_size": 2},
    }
    config_path = tmp_path / "gradus.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = materialize_project(config_path)
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "no_contaminated_problems_in_shards": True,
        "problems_schema": True,
        "rollouts_schema": True,
        "difficulty_schema": True,
        "shards_match_manifest": True,
        "answers_in_shards": True,
        "curriculum_is_graded": True,
        "skill_balance_in_shards": True,  # 16-token rollouts fail both clean problems: no shard rows to balance
    }
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from problems").fetchone() == (4,)
        dup = con.execute("select d.method, p.question from duplicates d join problems p using (problem_id)").fetchall()
        assert len(dup) == 1 and dup[0][0] == "exact"
        leaked = con.execute("select p.question, c.benchmark from contamination c join problems p using (problem_id)")
        assert {(q.strip(), b) for q, b in leaked.fetchall()} == {(leak["question"].strip(), "gsm8k_test")}
        graded = con.execute("select count(distinct problem_id) from rollouts").fetchone()
        assert graded == (2,), "only the two clean, distinct problems get rollouts"
        reasons = [r for (r,) in con.execute("select reason from curriculum_excluded").fetchall()]
        assert sum(r.startswith("duplicate (exact") for r in reasons) == 1
        assert sum(r.startswith("contaminated: matches gsm8k_test") for r in reasons) == 1

    # the check's logic reports any shard row that is in `contamination`
    data = DataRoot(root)
    leaked_id = data.read_table("contamination").column("problem_id")[0].as_py()
    clean_ids = [r["problem_id"] for r in data.read_table("problems").to_pylist() if r["problem_id"] != leaked_id]
    assert contaminated_in_shards(data, [*clean_ids, leaked_id]) == [leaked_id]
    assert contaminated_in_shards(data, clean_ids) == []
