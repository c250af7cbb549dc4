"""Curriculum planning, shard writing (deterministic bytes) and the in-order reader."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from engines.errors import IntegrityError
from scoring.curriculum import CurriculumConfig, CurriculumReader, plan_curriculum, write_shards
from scoring.schemas import DIFFICULTY, PROBLEMS, to_table


def _tables(ks: dict[str, int], n: int = 4):
    problems = [
        {
            "problem_id": pid,
            "source": "t",
            "family": "t",
            "question": f"q {pid}",
            "answer": "1",
            "solution": None,
            "difficulty_knob": None,
            "source_ref": pid,
            "metadata": "{}",
        }
        for pid in ks
    ]
    grades = [
        {
            "problem_id": pid,
            "student_id": "s",
            "student_revision": "r",
            "sampling_hash": "h",
            "verifier_version": "v",
            "n": n,
            "k": k,
            "pass_rate": k / n,
            "post_mean": (k + 1) / (n + 2),
            "post_lo": 0.0,
            "post_hi": 1.0,
        }
        for pid, k in ks.items()
    ]
    return to_table(problems, PROBLEMS), to_table(grades, DIFFICULTY)


def test_plan_orders_easy_to_hard_and_excludes_signal_free_problems() -> None:
    problems, grades = _tables({"p1": 1, "p2": 3, "p3": 4, "p4": 0, "p5": 2, "p6": 3, "p7": 2})
    grades = grades.filter(pc.not_equal(grades.column("problem_id"), "p7"))  # in the pool, never graded
    plan = plan_curriculum(problems, grades, student_id="s")
    assert plan.ordered.column("problem_id").to_pylist() == ["p2", "p6", "p5", "p1"]
    assert plan.ordered.column("position").to_pylist() == [0, 1, 2, 3]
    difficulty = plan.ordered.column("difficulty").to_pylist()
    assert difficulty == sorted(difficulty)
    excluded = {r["problem_id"]: r["reason"] for r in plan.excluded.to_pylist()}
    assert excluded["p3"].startswith("too_easy") and excluded["p4"].startswith("too_hard")
    assert excluded["p7"].startswith("ungraded")
    assert plan.ordered.num_rows + plan.excluded.num_rows == problems.num_rows


def test_shards_are_byte_identical_on_rewrite_and_read_back_in_order(tmp_path: Path) -> None:
    problems, grades = _tables({f"p{i}": i % 4 for i in range(1, 11)}, n=4)  # k=0 at p4, p8
    plan = plan_curriculum(problems, grades, student_id="s")
    config = CurriculumConfig(shard_size=3)
    manifest, curriculum = write_shards(plan, tmp_path, config=config, student_id="s", provenance={"x": "y"})
    first = {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}
    write_shards(plan, tmp_path, config=config, student_id="s", provenance={"x": "y"})
    assert {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())} == first
    assert [s["rows"] for s in manifest["shards"]] == [3, 3, 2]
    assert curriculum.column("position").to_pylist() == list(range(8))
    reader = CurriculumReader(tmp_path)
    batches = list(reader.batches(5))
    assert [len(b) for b in batches] == [5, 3] and len(reader) == 8
    positions = [row["position"] for batch in batches for row in batch]
    assert positions == list(range(8))
    difficulties = [row["difficulty"] for batch in batches for row in batch]
    assert difficulties == sorted(difficulties)


def test_fewer_shards_on_rewrite_remove_stale_ones_and_tampering_is_caught(tmp_path: Path) -> None:
    problems, grades = _tables({f"p{i}": 1 + i % 2 for i in range(10)})
    plan = plan_curriculum(problems, grades, student_id="s")
    write_shards(plan, tmp_path, config=CurriculumConfig(shard_size=2), student_id="s", provenance={})
    write_shards(plan, tmp_path, config=CurriculumConfig(shard_size=5), student_id="s", provenance={})
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-00000.parquet", "shard-00001.parquet"]
    (tmp_path / "shard-00001.parquet").write_bytes(b"PAR1 tampered")
    with pytest.raises(IntegrityError, match="sha256"):
        list(CurriculumReader(tmp_path).rows())
