"""Stages around the difficulty table, on a real data root and DuckDB catalog: revisions and the diff view,
predicted rows that never replace measured ones, band filter decisions, the predictor and the IRT fit."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from engines.config import expected_revision
from scoring.catalog import refresh_catalog
from scoring.config import ProjectConfig
from scoring.grading.policy import GradingConfig, PredictorConfig
from scoring.grading.rollouts import sampling_hash
from scoring.grading.verify import VERIFIER_VERSION
from scoring.schemas import PREDICTIONS, PROBLEMS, ROLLOUTS, to_table
from scoring.stages.difficulty import (
    LEGACY_PREDICTOR_FILE,
    PREDICTOR_ARRAYS_FILE,
    PREDICTOR_FILE,
    build_band_filter,
    build_difficulty,
    build_irt,
    build_predictor,
    ignored_legacy_predictor,
    predictor_guidance,
    predictor_path,
)
from scoring.stages.problems import load_problems
from scoring.stages.report import student_partition
from scoring.storage import DataRoot
from synthesis.families import FAMILIES
from tests.scoring.stages.conftest import project_config

# Adaptive grading with the pass-rate predictor screening the pool.
SCREENED = GradingConfig(mode="adaptive", predictor=PredictorConfig(enabled=True, screen=True))


def _pool(root: DataRoot, per_level: int = 8) -> list[dict[str, object]]:
    family = FAMILIES.get("arithmetic")()
    problems = family.sample(3, [1, 2, 3, 4, 5], per_level)
    rows = [{name: getattr(p, name) for name in p.__slots__} for p in problems]
    root.write_table("problems", to_table(rows, PROBLEMS))
    return rows


def _rollouts(config: ProjectConfig, counts: dict[str, tuple[int, int]], revision: str | None = None) -> pa.Table:
    revision = revision or expected_revision(config.student.engine, Path("/nonexistent"))
    rows = []
    for pid, (k, n) in counts.items():
        for i in range(n):
            rows.append(
                {
                    "problem_id": pid,
                    "student_id": config.student.id,
                    "student_revision": revision,
                    "sampling_hash": sampling_hash(config.rollouts),
                    "sample_index": i,
                    "completion": "",
                    "verdict": "correct" if i < k else "wrong",
                    "verifier_version": VERIFIER_VERSION,
                    "prompt_tokens": 5,
                    "completion_tokens": 3,
                    "finish_reason": "stop",
                    "latency_s": 0.1,
                }
            )
    return to_table(rows, ROLLOUTS)


def _add(root: DataRoot, config: ProjectConfig, table: pa.Table) -> None:
    root.upsert_table(
        "rollouts",
        table,
        ("problem_id", "student_id", "student_revision", "sampling_hash", "sample_index"),
        student_partition(config),
    )


def test_a_new_revision_is_diffed_against_the_one_graded_before_it(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    pool = _pool(root, per_level=2)
    config = project_config(tmp_path)
    ids = [str(p["problem_id"]) for p in pool]
    # the older revision has the lexically larger name: order must come from grading time, not names
    _add(root, config, _rollouts(config, {pid: (0, 4) for pid in ids}, revision="zz-old"))
    build_difficulty(config, root)
    _add(root, config, _rollouts(config, {pid: (4 if i % 2 else 2, 4) for i, pid in enumerate(ids)}, "aa-new"))
    summary = build_difficulty(config, root)
    assert summary.counts["graded"] == 2 * len(ids)
    views = refresh_catalog(root)
    assert {"difficulty_diff", "difficulty_diff_family", "student_comparison"} <= set(views)
    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        diff = con.execute(
            "select before_revision, after_revision, count(*), sum(moved_band::int), avg(delta) "
            "from difficulty_diff group by all"
        ).fetchall()
        assert diff == [("zz-old", "aa-new", len(ids), len(ids), 0.75)]
        family = con.execute("select family, problems, became_too_easy from difficulty_diff_family").fetchall()
        assert family == [("arithmetic", len(ids), len(ids) // 2)]
        by_family = con.execute("select family, avg(pass_rate) from difficulty group by 1").fetchall()
        assert by_family == [("arithmetic", 0.375)]
        compared = con.execute("select max(students_graded) from student_comparison").fetchone()
        assert compared == (2,)


def test_predicted_rows_fill_only_problems_without_measurements(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    pool = _pool(root, per_level=1)
    config = project_config(tmp_path)
    measured_id, predicted_id = str(pool[0]["problem_id"]), str(pool[1]["problem_id"])
    _add(root, config, _rollouts(config, {measured_id: (1, 4)}))
    revision = expected_revision(config.student.engine, root.models_dir)
    predictions = [
        {
            "problem_id": pid,
            "student_id": "s",
            "student_revision": revision,
            "sampling_hash": sampling_hash(config.rollouts),
            "verifier_version": VERIFIER_VERSION,
            "predictor": "predicted_v1",
            "p": 0.02,
            "alpha": 0.1,
            "beta": 4.9,
            "lo": 0.0,
            "hi": 0.05,
            "screened_band": "too_hard",
        }
        for pid in (measured_id, predicted_id)
    ]
    root.write_table("predictions", to_table(predictions, PREDICTIONS), student_partition(config))
    graded = {r["problem_id"]: r for r in build_difficulty(config, root).table.to_pylist()}
    assert graded[measured_id]["method"] == "fixed_k_v1" and graded[measured_id]["n"] == 4
    assert graded[predicted_id]["method"] == "predicted_v1" and graded[predicted_id]["n"] == 0
    assert graded[predicted_id]["band"] == "too_hard" and graded[predicted_id]["post_hi"] == 0.05


def test_band_filters_decide_every_graded_problem(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    pool = _pool(root, per_level=1)
    config = project_config(tmp_path)
    counts = dict(
        zip([str(p["problem_id"]) for p in pool], [(0, 16), (1, 16), (8, 16), (15, 16), (16, 16)], strict=True)
    )
    _add(root, config, _rollouts(config, counts))
    build_difficulty(config, root)
    summary = build_band_filter(config, root)
    assert summary.table.num_rows == 3 * len(pool)
    assert summary.counts["odf_band_v1_kept"] == 1  # only 8/16 lies in [0.25, 0.75]
    assert summary.counts["dapo_nonzero_v1_kept"] == 3 and summary.counts["skywork_1_to_k_minus_1_v1_kept"] == 3


def test_predictor_trains_on_grades_and_guides_a_new_pool(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    pool = _pool(root, per_level=10)
    config = project_config(tmp_path, grading=SCREENED)
    # harder knob, lower pass rate: a structure the predictor should pick up
    counts = {
        str(p["problem_id"]): (max(0, 16 - 4 * int(p["difficulty_knob"]) + (i % 3)), 16) for i, p in enumerate(pool)
    }
    _add(root, config, _rollouts(config, counts))
    build_difficulty(config, root)
    summary = build_predictor(config, root)
    assert predictor_path(root, "s").is_file() and summary.table.num_rows >= 2
    assert 0.5 <= float(summary.figures["pseudo_count_rollouts"]) <= 64
    problems = load_problems(root)
    priors, screened, predictions = predictor_guidance(
        config, root, problems, {}, revision="r2", sampling="h", verifier_version="v"
    )
    assert predictions.num_rows == len(problems) and len(priors) == len(problems)
    easy = [p.problem_id for p in problems if p.difficulty_knob == 1]
    hard = [p.problem_id for p in problems if p.difficulty_knob == 5]
    mean = {pid: a / (a + b) for pid, (a, b) in priors.items()}
    assert min(mean[p] for p in easy) > max(mean[p] for p in hard)
    assert all(band in {"too_easy", "too_hard"} for band in screened.values())
    too_few = project_config(tmp_path / "other")
    other = DataRoot(tmp_path / "other")
    _pool(other, per_level=1)
    assert build_predictor(too_few, other).figures["status"].startswith("0 graded problems")


class _Payload:
    """Unpickling this creates `marker` (what `joblib.load` of a planted file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def test_an_old_pickled_predictor_is_ignored_and_never_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = DataRoot(tmp_path)
    pool = _pool(root, per_level=10)
    config = project_config(tmp_path, grading=SCREENED)
    marker = tmp_path / "pwned"
    legacy = predictor_path(root, "s").with_name(LEGACY_PREDICTOR_FILE)
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(pickle.dumps(_Payload(marker)))
    problems = load_problems(root)

    def guidance() -> tuple:
        return predictor_guidance(config, root, problems, {}, revision="r2", sampling="h", verifier_version="v")

    # The calls adaptive grading makes (build_rollouts): the old file counts as no predictor, with a note.
    with caplog.at_level(logging.WARNING, logger="scoring.stages.difficulty"):
        priors, screened, predictions = guidance()
        note = ignored_legacy_predictor(root, "s")
    assert (priors, screened, predictions.num_rows) == ({}, {}, 0)
    assert note is not None and note.startswith(f"ignored {legacy}") and "unpickling can run code" in note
    assert "no predictor until the `predictor` asset retrains it" in note and note in caplog.text
    assert not marker.exists()

    # The predictor asset retrains into the new files and reports the old one; guidance then uses the new files.
    counts = {
        str(p["problem_id"]): (max(0, 16 - 4 * int(p["difficulty_knob"]) + i % 3), 16) for i, p in enumerate(pool)
    }
    _add(root, config, _rollouts(config, counts))
    build_difficulty(config, root)
    summary = build_predictor(config, root)
    assert summary.path == predictor_path(root, "s") and summary.path.name == PREDICTOR_FILE == "predictor.json"
    assert summary.path.with_name(PREDICTOR_ARRAYS_FILE).is_file()
    assert str(summary.figures["predictor_note"]).startswith(f"ignored {legacy}")
    assert "the predictor in predictor.json is used" in str(summary.figures["predictor_note"])
    assert guidance()[2].num_rows == len(problems)
    assert not marker.exists() and legacy.is_file()


def test_irt_ranks_students_across_the_shared_pool(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    pool = _pool(root, per_level=4)
    strong, weak = project_config(tmp_path, student="strong"), project_config(tmp_path, student="weak")
    assert build_irt(root).figures["status"] == "fewer than 2 students graded"
    for config, base in ((strong, 14), (weak, 8)):
        counts = {str(p["problem_id"]): (max(0, base - 2 * int(p["difficulty_knob"])), 16) for p in pool}
        _add(root, config, _rollouts(config, counts))
        build_difficulty(config, root)
    summary = build_irt(root)
    theta = {r["student_id"]: r["ability_theta"] for r in summary.table.to_pylist()}
    assert theta["strong"] > theta["weak"]
    views = refresh_catalog(root)
    assert {"irt_items", "irt_students"} <= set(views)
