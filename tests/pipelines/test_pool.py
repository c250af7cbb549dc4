"""The pool between sources and grading, through Dagster on a real data root: a planted duplicate and a planted
benchmark item (MATH-500, read from ../shared/data) are kept out of rollouts and shards, each with its reason, while
the problems beside them reach the shards — so the shard checks run on a curriculum that holds problems."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from engines.models import EMBEDDED_MODELS, ensure_model
from pipelines.materialize import materialize_project
from scoring.curation.pool import contaminated_in_shards
from scoring.curriculum.shards import CurriculumReader
from scoring.storage import DataRoot
from synthesis.families import FAMILIES
from tests.conftest import SMALL_MODEL, linked_data_root, write_project

# MATH-500 item 77, "If $2^8=4^x$, what is the value of $x$?": cut at 16 tokens the 0.5B's attempts are scored
# 3 of 4 correct, so it would be a learnable curriculum problem — only decontamination keeps it out.
LEAK_LINE = 77
ROLLOUTS = {"k": 4, "max_tokens": 16, "prompt": "answer_only_v1", "seed": 0}


def test_planted_duplicate_and_benchmark_leak_never_reach_the_shards(
    session_root: Path, shared_dir: Path, tmp_path: Path
) -> None:
    ensure_model(EMBEDDED_MODELS[SMALL_MODEL], session_root / "models")
    root = linked_data_root(tmp_path / "root", session_root / "models")
    # Answer-only in 16 tokens, the 0.5B gets the two sums right 2 and 3 times of 4, and the third remainder
    # (10^2 mod 7) once: the curriculum's three rows, in two families (the other two remainders: never).
    sums = FAMILIES.get("arithmetic")().sample(seed=0, difficulties=[1], per_level=2)
    remainders = FAMILIES.get("modular_arithmetic")().sample(seed=0, difficulties=[1], per_level=3)
    twin = sums[1]  # "Compute 34 + 40.", kept over its copy below: it carries a worked solution
    # Same text up to case and spacing: a new problem id, but an exact duplicate after normalization.
    copy = {"question": twin.question.lower().replace(" ", "  "), "answer": f"#### {twin.answer}"}
    (tmp_path / "copies.jsonl").write_text(json.dumps(copy) + "\n")
    math500 = shared_dir / "data/math/math500_test.jsonl"
    leak = json.loads(math500.read_text().splitlines()[LEAK_LINE])
    (tmp_path / "leak.jsonl").write_text(json.dumps(leak) + "\n")
    config = {
        "student": {"id": "pool-test", "engine": {"model": SMALL_MODEL, "n_ctx": 1024}},
        "sources": {
            "procedural": [
                {"family": "arithmetic", "levels": [1], "per_level": 2, "seed": 0},
                {"family": "modular_arithmetic", "levels": [1], "per_level": 3, "seed": 0},
            ],
            "imports": [
                {"preset": "gsm8k", "path": str(tmp_path / "copies.jsonl")},
                {"preset": "math", "path": str(tmp_path / "leak.jsonl")},
            ],
        },
        "rollouts": ROLLOUTS,
        "decontamination": {
            "benchmarks": [
                {"name": "gsm8k_test", "path": str(shared_dir / "data/gsm8k/test.jsonl"), "preset": "gsm8k"},
                {"name": "math500", "path": str(math500), "preset": "math"},
            ]
        },
        "curriculum": {"shard_size": 2},
        "skills": {"max_share": 0.7},  # two of three rows are sums: the balance check sees a real spread
    }
    result = materialize_project(write_project(tmp_path, root, **config))
    assert result.success

    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        problems = dict(con.execute("select question, problem_id from problems").fetchall())
        assert len(problems) == 7
        planted = {"duplicate": problems[copy["question"]], "leak": problems[leak["problem"]]}
        # What the trainer reads: the manifest's shards, sha256-checked (no `shards` view exists without rows).
        shard_ids = [row["problem_id"] for row in CurriculumReader(root / "shards/pool-test/easy_to_hard_v1").rows()]
        assert len(shard_ids) > 0, "the shard checks below must run on a curriculum that holds problems"
        assert not set(planted.values()) & set(shard_ids), f"planted items in the shards: {planted}"
        assert twin.problem_id in shard_ids, "the duplicate's twin is graded and kept: only dedup stops the copy"
        assert sorted(shard_ids) == sorted([*(p.problem_id for p in sums), remainders[2].problem_id])

        dup = con.execute("select problem_id, kept_id, method from duplicates").fetchall()
        assert dup == [(planted["duplicate"], twin.problem_id, "exact")]
        leaked = con.execute("select distinct problem_id, benchmark from contamination").fetchall()
        assert leaked == [(planted["leak"], "math500")]
        graded = con.execute("select distinct problem_id from rollouts").fetchall()
        clean = {p.problem_id for p in (*sums, *remainders)}
        assert {pid for (pid,) in graded} == clean, "only the clean problems get rollouts"
        reasons = dict(con.execute("select problem_id, reason from curriculum_excluded").fetchall())
        assert set(reasons) == {*planted.values(), remainders[0].problem_id, remainders[1].problem_id}
        assert all(reasons[r.problem_id].startswith("too_hard: all 4 rollouts failed") for r in remainders[:2])
        assert reasons[planted["duplicate"]].startswith(f"duplicate (exact, 1.00) of {twin.problem_id}")
        assert reasons[planted["leak"]].startswith("contaminated: matches math500")

    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    checks = {name: c.passed for name, c in evaluations.items()}
    assert checks == {
        "no_contaminated_problems_in_shards": True,
        "problems_schema": True,
        "rollouts_schema": True,
        "difficulty_schema": True,
        "shards_match_manifest": True,
        "answers_in_shards": True,
        "curriculum_is_graded": True,
        "skill_balance_in_shards": True,
    }
    shares = evaluations["skill_balance_in_shards"].metadata["shares"].value
    assert "| family:arithmetic | 66.7% |" in shares and "| family:modular_arithmetic | 33.3% |" in shares, shares
    # ... and the contamination check's logic reports a leaked shard row
    data = DataRoot(root)
    assert contaminated_in_shards(data, [*shard_ids, planted["leak"]]) == [planted["leak"]]
    assert contaminated_in_shards(data, shard_ids) == []
