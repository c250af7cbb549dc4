"""Stages around the difficulty table: the pass-rate predictor, band filters, revisions and the IRT fit.

Like `scoring.stages.pipeline`, each reads from the data root, writes its tables atomically and returns a summary.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from scoring.config import ProjectConfig
from scoring.grading.adaptive import ProblemState
from scoring.grading.band_filters import apply_filter
from scoring.grading.irt import fit_rasch
from scoring.grading.predictor import PREDICTOR_METHOD, PassRatePredictor, Prediction, screen
from scoring.schemas import DIFFICULTY, PREDICTIONS, PREDICTOR_RELIABILITY, STUDENT_REVISIONS, to_table
from scoring.storage import DataRoot
from synthesis.problem import Problem

# A saved predictor is a JSON manifest plus its arrays beside it; neither can run code when read
# (scoring.grading.predictor).
PREDICTOR_FILE = "predictor.json"
PREDICTOR_ARRAYS_FILE = "predictor.npz"
# What earlier versions wrote: a joblib pickle. Never opened: loading a pickle can run code, and the data root may
# be a shared filesystem. A student that has only this file counts as having no predictor until it is retrained.
LEGACY_PREDICTOR_FILE = "predictor.joblib"

log = logging.getLogger(__name__)


def predictor_path(root: DataRoot, student_id: str) -> Path:
    """The student's saved predictor: its `.json` manifest (`PassRatePredictor.load` takes this path)."""
    return root.path / "predictors" / student_id / PREDICTOR_FILE


def ignored_legacy_predictor(root: DataRoot, student_id: str) -> str | None:
    """A note (also logged) when an earlier version's pickled predictor is present; None when there is none.

    The file is only checked for existence, never opened."""
    legacy = predictor_path(root, student_id).with_name(LEGACY_PREDICTOR_FILE)
    if not legacy.exists():
        return None
    current = predictor_path(root, student_id)
    outcome = (
        f"the predictor in {current.name} is used"
        if current.is_file()
        else "the student has no predictor until the `predictor` asset retrains it"
    )
    note = (
        f"ignored {legacy}: a pickled predictor from an earlier version, which is never loaded because "
        f"unpickling can run code; {outcome}. The file can be deleted."
    )
    log.warning(note)
    return note


def _problem_features(problem: Problem | Mapping[str, object]) -> dict[str, object]:
    get = problem.get if isinstance(problem, Mapping) else lambda name: getattr(problem, name)
    return {name: get(name) for name in ("problem_id", "question", "family", "difficulty_knob", "source")}


def train_predictor(
    config: ProjectConfig, root: DataRoot, grades: pa.Table
) -> tuple[PassRatePredictor | None, pa.Table, str]:
    """Fit the student's predictor on its measured grades; (predictor or None, reliability rows, note)."""
    measured = grades.filter(
        pc.and_(pc.greater(grades.column("n"), 0), pc.not_equal(grades.column("method"), PREDICTOR_METHOD))
    )
    wanted = config.grading.predictor.min_training_problems
    if measured.num_rows < wanted:
        return None, to_table([], PREDICTOR_RELIABILITY), f"{measured.num_rows} graded problems, {wanted} needed"
    ks = measured.column("k").to_pylist()
    ns = measured.column("n").to_pylist()
    if all(k == 0 for k in ks) or all(k == n for k, n in zip(ks, ns, strict=True)):
        return None, to_table([], PREDICTOR_RELIABILITY), "every graded problem has the same outcome"
    problems = {row["problem_id"]: row for row in root.read_table("problems").to_pylist()}
    rows = [r for r in measured.to_pylist() if r["problem_id"] in problems]
    predictor = PassRatePredictor(level=0.9).fit(
        [_problem_features(problems[r["problem_id"]]) for r in rows], [(r["k"], r["n"]) for r in rows]
    )
    revision = rows[0]["student_revision"]
    reliability = [
        {"student_id": config.student.id, "student_revision": revision, **bin_row}
        for bin_row in predictor.reliability_table()
    ]
    return predictor, to_table(reliability, PREDICTOR_RELIABILITY), f"trained on {len(rows)} problems"


def predictor_guidance(
    config: ProjectConfig,
    root: DataRoot,
    problems: Sequence[Problem],
    stored: Mapping[str, ProblemState],
    *,
    revision: str,
    sampling: str,
    verifier_version: str,
) -> tuple[dict[str, tuple[float, float]], dict[str, str], pa.Table]:
    """Priors and screened bands from the student's saved predictor for problems with no stored evidence.

    Returns (priors, screened {problem_id: band}, the `predictions` rows). Empty when the predictor is off or
    has not been trained yet (it is trained by the `predictor` asset on an earlier grading of the student); an
    earlier version's pickled `predictor.joblib` counts as not trained and is never opened.
    """
    settings = config.grading.predictor
    path = predictor_path(root, config.student.id)
    if not settings.enabled or not path.is_file():
        return {}, {}, to_table([], PREDICTIONS)
    fresh = [p for p in problems if stored.get(p.problem_id, ProblemState(p.problem_id)).n == 0]
    if not fresh:
        return {}, {}, to_table([], PREDICTIONS)
    predictions = PassRatePredictor.load(path).predict([_problem_features(p) for p in fresh])
    bands = config.grading.bands
    screened = screen(predictions, bands.too_hard, bands.too_easy) if settings.screen else {}
    priors = {p.problem_id: (p.alpha, p.beta) for p in predictions} if settings.prior else {}
    rows = [
        _prediction_row(p, config.student.id, revision, sampling, verifier_version, screened.get(p.problem_id))
        for p in predictions
    ]
    return priors, screened, to_table(rows, PREDICTIONS)


def _prediction_row(
    prediction: Prediction, student_id: str, revision: str, sampling: str, verifier: str, band: str | None
) -> dict[str, object]:
    return {
        "problem_id": prediction.problem_id,
        "student_id": student_id,
        "student_revision": revision,
        "sampling_hash": sampling,
        "verifier_version": verifier,
        "predictor": PREDICTOR_METHOD,
        "p": prediction.p,
        "alpha": prediction.alpha,
        "beta": prediction.beta,
        "lo": prediction.lo,
        "hi": prediction.hi,
        "screened_band": band,
    }


def predicted_grades(predictions: pa.Table, measured: pa.Table) -> pa.Table:
    """Difficulty rows (`method = predicted_v1`, n = 0) for screened problems that have no measured grade.

    A prediction never replaces a measurement: a problem graded on rollouts keeps only its measured row.
    """
    key = ("problem_id", "student_id", "student_revision", "sampling_hash", "verifier_version")
    graded = set(zip(*(measured.column(k).to_pylist() for k in key), strict=True)) if measured.num_rows else set()
    rows = []
    for row in predictions.to_pylist():
        if row["screened_band"] is None or tuple(row[k] for k in key) in graded:
            continue
        rows.append(
            {
                **{k: row[k] for k in key},
                "n": 0,
                "k": 0,
                "n_timeout": 0,
                "n_error": 0,
                "pass_rate": row["p"],
                "beta_alpha": row["alpha"],
                "beta_beta": row["beta"],
                "post_mean": row["p"],
                "post_lo": row["lo"],
                "post_hi": row["hi"],
                "learnability": row["p"] * (1 - row["p"]),
                "band": row["screened_band"],
                "method": PREDICTOR_METHOD,
                "stop_reason": "predictor_screen",
                "prior_alpha": row["alpha"],
                "prior_beta": row["beta"],
                "mean_response_tokens": 0.0,
                "tokens_spent": 0,
                "seconds_spent": 0.0,
            }
        )
    return to_table(rows, DIFFICULTY)


def register_revisions(root: DataRoot, grades: pa.Table, model: str, student_partition: dict[str, str]) -> pa.Table:
    """Record when each (student, revision) was first graded; the diff view orders revisions by it."""
    now = datetime.now(UTC)
    pairs = sorted(_student_pairs(grades))
    rows = [{"student_id": s, "student_revision": r, "model": model, "first_graded_at": now} for s, r in pairs]
    return root.upsert_table(
        "student_revisions", to_table(rows, STUDENT_REVISIONS), ("student_id", "student_revision"), student_partition
    )


def band_filter_decisions(config: ProjectConfig, grades: pa.Table) -> pa.Table:
    """Every configured band filter's keep/drop decision (with reason) for every graded row."""
    measured = grades.filter(pc.not_equal(grades.column("method"), PREDICTOR_METHOD))
    tables = [apply_filter(measured, f) for f in config.grading.filters]
    return pa.concat_tables(tables) if tables else apply_filter(measured.slice(0, 0), config.grading.filters[0])


def irt_fit(all_grades: pa.Table) -> tuple[pa.Table, pa.Table] | None:
    """The Rasch fit across every graded (student, revision), or None with fewer than two.

    Grades from different sampling configs or verifiers are not comparable, so the fit uses the most common
    (sampling_hash, verifier_version) pair only.
    """
    measured = all_grades.filter(pc.greater(all_grades.column("n"), 0))
    if measured.num_rows == 0:
        return None
    configs = list(
        zip(measured.column("sampling_hash").to_pylist(), measured.column("verifier_version").to_pylist(), strict=True)
    )
    common = max(sorted(set(configs)), key=configs.count)
    measured = measured.filter(pa.array([c == common for c in configs], type=pa.bool_()))
    if len(_student_pairs(measured)) < 2:
        return None
    return fit_rasch(measured)


def _student_pairs(grades: pa.Table) -> set[tuple[str, str]]:
    ids, revisions = grades.column("student_id").to_pylist(), grades.column("student_revision").to_pylist()
    return set(zip(ids, revisions, strict=True))
