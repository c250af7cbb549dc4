"""End to end on the real 0.5B CPU model: `dg.materialize` of every asset into a data root, read back with
DuckDB; a second run makes zero model calls and rewrites byte-identical shards; `gradus run` does the same."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.materialize import materialize_project
from tests.conftest import SMALL_MODEL, write_project

STUDENT = "qwen05-test"


@dataclass
class Run:
    config_path: Path
    root: Path
    first: dg.ExecuteInProcessResult
    shard_bytes: dict[str, bytes]


def _shards(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "shards" / STUDENT).rglob("*")) if p.is_file()}


def _materialize(config_path: Path) -> dg.ExecuteInProcessResult:
    return materialize_project(config_path)


@pytest.fixture(scope="module")
def first_run(session_root: Path, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    work = tmp_path_factory.mktemp("pipeline")
    gsm8k_line = (shared_dir / "data" / "gsm8k" / "train.jsonl").read_text().splitlines()[0]
    seeds = work / "seeds.jsonl"
    seeds.write_text(gsm8k_line + "\n" + '{"question": "broken line", "answer": \n')
    config = {
        "student": {"id": STUDENT, "engine": {"backend": "embedded", "model": SMALL_MODEL, "n_ctx": 1024}},
        "sources": {
            "procedural": [{"family": "arithmetic", "levels": [1, 5], "per_level": 3, "seed": 0}],
            "imports": [{"preset": "gsm8k", "path": str(seeds)}],
        },
        "rollouts": {"k": 4, "max_tokens": 160, "temperature": 0.8, "seed": 0},
        "curriculum": {"shard_size": 2},
    }
    config_path = write_project(work, session_root, **config)
    result = _materialize(config_path)
    assert result.success
    return Run(config_path, session_root, result, _shards(session_root))


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict[str, object]:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_first_run_grades_with_real_rollouts(first_run: Run) -> None:
    meta = _meta(first_run.first, "rollouts")
    assert meta["rollouts_this_run"] == 7 * 4
    assert meta["model_calls"] + meta["cache_hits"] == 28
    difficulty_meta = _meta(first_run.first, "difficulty")
    assert "pass_rate_histogram" in difficulty_meta
    assert "| arithmetic | 6 |" in difficulty_meta["per_family"] and "| gsm8k | 1 |" in difficulty_meta["per_family"]
    assert "| stage |" in _meta(first_run.first, "curriculum_shards")["per_stage"]
    with duckdb.connect(str(first_run.root / "catalog.duckdb"), read_only=True) as con:
        by_level = dict(
            con.execute(
                "select p.difficulty_knob, avg(d.pass_rate) from difficulty d join problems p using (problem_id) "
                f"where p.family = 'arithmetic' and d.student_id = '{STUDENT}' group by 1"
            ).fetchall()
        )
        assert by_level[1] > by_level[5], f"harder knob must have a lower mean pass rate: {by_level}"
        rules = con.execute(
            "select distinct p.family, r.verifier_rule from rollouts r join problems p using (problem_id) "
            f"where r.verdict != 'unparseable' and r.student_id = '{STUDENT}' order by 1, 2"
        ).fetchall()
        # The family's own scorer decides family problems; GSM8K's plain-number gold is compared as a number.
        assert rules == [("arithmetic", "family:arithmetic"), ("gsm8k", "numeric")]
        audit_rules = {r for (r,) in con.execute("select distinct rule from verdict_audit").fetchall()}
        assert {"family:arithmetic", "exact_match"} <= audit_rules
        # Verifier v3's full-text candidate runs only where it could change a verdict: never on a family's
        # problem, and not on these four GSM8K rollouts either: each stops mid-solution, and the answer
        # math-verify would read first is the number Gradus read and judged wrong.
        ours = con.execute(f"select distinct rule from verdict_audit where student_id = '{STUDENT}'").fetchall()
        assert ("math_verify_full",) not in ours and ("numeric",) in ours
        # The view counts the samples whose checkers disagree, as the rollouts stage counted them while grading.
        audit = con.execute(
            "select problem_id, sample_index, list(distinct verdict) from verdict_audit "
            f"where student_id = '{STUDENT}' group by all"
        ).fetchall()
        assert len(audit) == 28, "every rollout is audited"
        split = sum(len(verdicts) > 1 for _, _, verdicts in audit)
        in_view = con.execute(f"select count(*) from disagreements where student_id = '{STUDENT}'").fetchone()[0]
        assert in_view == split == meta["checker_disagreements"]
        counts = con.execute(f"select count(*), sum(n) from difficulty where student_id = '{STUDENT}'").fetchone()
        assert (
            counts[0] == 7
            and counts[1] + con.execute("select coalesce(sum(n_timeout + n_error), 0) from difficulty").fetchone()[0]
            == 28
        )
        families = dict(con.execute("select family, count(*) from difficulty group by 1").fetchall())
        assert families == {"arithmetic": 6, "gsm8k": 1}, "grades carry the family for per-family queries"
        decisions = con.execute("select filter, count(*) from band_filter group by 1").fetchall()
        assert sorted(decisions) == [("dapo_nonzero_v1", 7), ("odf_band_v1", 7), ("skywork_1_to_k_minus_1_v1", 7)]
        assert con.execute("select count(*) from student_revisions").fetchone() == (1,)
        assert con.execute("select count(*) from difficulty_diff").fetchone() == (0,), "one revision: no diff yet"


def test_shards_are_ordered_and_every_graded_problem_is_accounted_for(first_run: Run) -> None:
    with duckdb.connect(str(first_run.root / "catalog.duckdb"), read_only=True) as con:
        ordered = con.execute(
            f"select position, difficulty from shards where filename like '%/{STUDENT}/%' order by position"
        ).fetchall()
        difficulties = [d for _, d in ordered]
        assert difficulties == sorted(difficulties)
        kept = len(ordered)
        excluded = con.execute(f"select count(*) from curriculum_excluded where student_id = '{STUDENT}'").fetchone()[0]
        reasons = con.execute("select distinct split_part(reason, ':', 1) from curriculum_excluded").fetchall()
    assert kept + excluded == 7
    assert {r for (r,) in reasons} <= {"too_easy", "too_hard", "ungraded"}


def test_malformed_seed_line_becomes_a_reject_with_its_line_number(first_run: Run) -> None:
    with duckdb.connect(str(first_run.root / "catalog.duckdb"), read_only=True) as con:
        rows = con.execute("select input_ref, reason from rejects").fetchall()
        assert rows == [("seeds.jsonl:2", rows[0][1])] and "malformed JSON" in rows[0][1]
        assert con.execute("select count(*) from problems where source = 'gsm8k'").fetchone() == (1,)


def test_second_run_makes_no_model_calls_and_identical_shards(first_run: Run) -> None:
    second = _materialize(first_run.config_path)
    assert second.success
    meta = _meta(second, "rollouts")
    assert meta["model_calls"] == 0 and meta["cache_hits"] == 28
    assert _shards(first_run.root) == first_run.shard_bytes
    with duckdb.connect(str(first_run.root / "catalog.duckdb"), read_only=True) as con:
        assert con.execute(f"select count(*) from rollouts where student_id = '{STUDENT}'").fetchone() == (28,)


def test_cli_run_uses_the_cache_and_reports(first_run: Run, tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    gradus = Path(sys.executable).parent / "gradus"
    proc = subprocess.run(
        [str(gradus), "run", "--config", str(first_run.config_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "model calls 0, cache hits 28" in proc.stdout
    assert "mean_pass_rate" in proc.stdout
    assert _shards(first_run.root) == first_run.shard_bytes
    # the query command the run suggests works as typed (the DuckDB that Gradus installs; no separate CLI)
    suggested = re.search(r"\((gradus sql .*)\)$", proc.stdout, re.MULTILINE)
    assert suggested, proc.stdout
    argv = shlex.split(suggested[1])
    query = subprocess.run([str(gradus), *argv[1:]], env=env, capture_output=True, text=True, timeout=300)
    assert query.returncode == 0, query.stderr
    assert "pass_rate" in query.stdout and STUDENT in query.stdout


def test_cli_bad_engine_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "gradus.yaml"
    path.write_text("student:\n  id: s\n  engine:\n    backend: llamacpp\n")
    gradus = Path(sys.executable).parent / "gradus"
    proc = subprocess.run(
        [str(gradus), "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(tmp_path)},
    )
    assert proc.returncode == 2
    assert "unknown engine backend 'llamacpp'" in proc.stderr and "embedded" in proc.stderr
