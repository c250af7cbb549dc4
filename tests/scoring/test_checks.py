"""The data-quality checks behind the asset checks, on real files: each one fails on the fault it names."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.checks import answers_present, difficulty_coverage, schema_conformance, shard_conformance
from scoring.curriculum.shards import write_shards
from scoring.curriculum.strategies import CurriculumConfig, plan_curriculum
from scoring.schemas import PROBLEMS
from scoring.storage import DataRoot
from tests.scoring.conftest import graded_pool


def _shards(tmp_path: Path, ks: dict[str, int], answers: dict[str, str] | None = None) -> tuple[Path, pa.Table]:
    problems, grades = graded_pool(ks)
    if answers:
        rows = [{**r, "answer": answers.get(r["problem_id"], r["answer"])} for r in problems.to_pylist()]
        problems = pa.Table.from_pylist(rows, schema=PROBLEMS)
    plan = plan_curriculum(problems, grades, student_id="s")
    write_shards(plan, tmp_path / "shards", config=CurriculumConfig(shard_size=2), student_id="s", provenance={})
    return tmp_path / "shards", grades


def test_schema_conformance_names_the_file_and_column(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "root")
    problems, _ = graded_pool({"p1": 1, "p2": 2})
    root.write_table("problems", problems)
    assert schema_conformance(root, "problems").passed
    (path,) = root.table_files("problems")
    pq.write_table(
        problems.set_column(0, "problem_id", pa.array([1, 2])).append_column("extra", pa.array([0, 0])), path
    )
    outcome = schema_conformance(root, "problems")
    assert not outcome.passed and outcome.counts == {"files": 1, "problems": 2}
    assert any("'problem_id' is int64, declared string" in e for e in outcome.examples)
    assert any("unexpected column 'extra'" in e for e in outcome.examples)


def test_shard_conformance_catches_tampering(tmp_path: Path) -> None:
    shard_dir, _ = _shards(tmp_path, {f"p{i}": 1 + i % 3 for i in range(6)})
    assert shard_conformance(shard_dir).passed
    (shard_dir / "shard-00001.parquet").write_bytes(b"PAR1 tampered")
    outcome = shard_conformance(shard_dir)
    assert not outcome.passed and any("shard-00001.parquet" in e for e in outcome.examples)


def test_answers_present_lists_rows_without_an_answer(tmp_path: Path) -> None:
    shard_dir, _ = _shards(tmp_path, {"p1": 1, "p2": 2, "p3": 3}, answers={"p2": "  "})
    outcome = answers_present(shard_dir)
    assert not outcome.passed and outcome.examples == ["p2"] and outcome.counts == {"missing": 1}


def test_difficulty_coverage_flags_curriculum_rows_without_a_current_grade(tmp_path: Path) -> None:
    shard_dir, grades = _shards(tmp_path, {"p1": 1, "p2": 2, "p3": 3})
    assert difficulty_coverage(shard_dir, grades).passed
    stale = grades.filter(pc.not_equal(grades.column("problem_id"), "p3"))
    outcome = difficulty_coverage(shard_dir, stale)
    assert not outcome.passed and outcome.examples == ["p3"]
    assert outcome.counts == {"curriculum": 3, "ungraded": 1}
