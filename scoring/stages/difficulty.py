"""The grading stages on the student's rollouts: `difficulty`, `band_filter`, `predictor` and `irt`, with the
helpers they share (the pass-rate predictor's file, its guidance for adaptive grading, revisions, the Rasch fit)
and `student_grades`, the student's pass rate on new problems that synthesis filters by (ScaleQuest).

Each stage reads from the data root, writes its tables atomically and returns a `StageSummary`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from engines.config import expected_revision
from scoring.config import ProjectConfig
from scoring.grading.adaptive import ProblemState
from scoring.grading.band_filters import apply_filter
from scoring.grading.difficulty import grade_tallies, tally_sql
from scoring.grading.irt import fit_rasch
from scoring.grading.predictor import PREDICTOR_METHOD, PassRatePredictor, Prediction, screen
from scoring.grading.rollouts import run_rollouts, sampling_hash
from scoring.grading.verify import VERIFIER_VERSION, Verifier
from scoring.schemas import (
    DIFFICULTY,
    DIFFICULTY_KEY,
    IRT_ITEMS,
    PREDICTIONS,
    PREDICTOR_RELIABILITY,
    ROLLOUT_EVIDENCE_COLUMNS,
    STUDENT_REVISIONS,
    to_table,
)
from scoring.stages.report import StageSummary, student_partition
from scoring.stages.roles import EngineRoles
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


def build_difficulty(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Grade every key in the student's rollouts partition into its `difficulty` partition, plus predicted
    rows (`predicted_v1`) for problems the predictor screened out of grading; register new revisions."""
    part = student_partition(config)
    # tallied in DuckDB over the stored files: memory grows with the problems graded, not with the rollouts
    tallies = root.query_table("rollouts", tally_sql("stored"), part, columns=ROLLOUT_EVIDENCE_COLUMNS)
    adaptive = config.grading.adaptive if config.grading.mode == "adaptive" else None
    measured = (
        grade_tallies(tallies, bands=config.grading.bands, adaptive=adaptive)
        if tallies is not None
        else to_table([], DIFFICULTY)
    )
    predicted = predicted_grades(root.read_table("predictions", part), measured)
    graded = pa.concat_tables([measured, predicted]).sort_by([(k, "ascending") for k in DIFFICULTY_KEY])
    problems = root.read_table("problems", columns=["problem_id", "family"])
    family = problems.column("family").take(pc.index_in(graded.column("problem_id"), value_set=problems["problem_id"]))
    graded = graded.set_column(graded.schema.get_field_index("family"), "family", family)
    path = root.write_table("difficulty", graded, part)
    register_revisions(root, measured, config.student.engine.model, part)
    methods = {str(m["values"]): int(m["counts"]) for m in pc.value_counts(graded.column("method")).to_pylist()}
    counts = {"graded": graded.num_rows} | {f"method_{m}": methods[m] for m in sorted(methods)}
    return StageSummary(graded, counts, path=path)


def build_band_filter(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Each configured band filter's decisions over the student's current grades (`band_filter` table)."""
    decisions = band_filter_decisions(config, current_grades(config, root))
    path = root.write_table("band_filter", decisions, student_partition(config))
    counts: dict[str, int] = {
        f"{f}_{side}": 0 for f in decisions.column("filter").unique().to_pylist() for side in ("kept", "dropped")
    }
    for row in decisions.group_by(["filter", "kept"]).aggregate([([], "count_all")]).to_pylist():
        counts[f"{row['filter']}_{'kept' if row['kept'] else 'dropped'}"] = row["count_all"]
    return StageSummary(decisions, counts, path=path)


def build_predictor(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Train the student's pass-rate predictor on its current grades; save it (`predictor.json` + `predictor.npz`)
    and its reliability table. An earlier version's pickled `predictor.joblib` is left unread and reported."""
    predictor, reliability, note = train_predictor(config, root, current_grades(config, root))
    root.write_table("predictor_reliability", reliability, student_partition(config))
    path = predictor_path(root, config.student.id)
    figures: dict[str, float | int | str] = {"status": note}
    if predictor is not None:
        predictor.save(path)
        figures["pseudo_count_rollouts"] = round(predictor.pseudo_count, 3)
    if legacy := ignored_legacy_predictor(root, config.student.id):
        figures["predictor_note"] = legacy
    return StageSummary(reliability, {"reliability_bins": reliability.num_rows}, figures, path=path)


def build_irt(root: DataRoot) -> StageSummary:
    """A Rasch fit over every student and revision graded so far (skipped with fewer than two)."""
    fitted = irt_fit(root.read_all_partitions("difficulty"))
    if fitted is None:
        return StageSummary(to_table([], IRT_ITEMS), {"students": 0}, {"status": "fewer than 2 students graded"})
    items, students = fitted
    root.write_table("irt_items", items)
    path = root.write_table("irt_students", students)
    return StageSummary(students, {"students": students.num_rows, "items": items.num_rows}, path=path)


def current_grades(config: ProjectConfig, root: DataRoot) -> pa.Table:
    """The student's difficulty rows for the configured model revision, sampling config and verifier."""
    grades = root.read_table("difficulty", student_partition(config))
    revision = expected_revision(config.student.engine, root.models_dir)
    mask = pc.and_(
        pc.and_(
            pc.equal(grades.column("student_revision"), revision),
            pc.equal(grades.column("sampling_hash"), sampling_hash(config.rollouts)),
        ),
        pc.equal(grades.column("verifier_version"), VERIFIER_VERSION),
    )
    return grades.filter(mask)


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
    if predictions.num_rows == 0:
        return to_table([], DIFFICULTY)
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


def register_revisions(root: DataRoot, grades: pa.Table, model: str, partition: dict[str, str]) -> pa.Table:
    """Record when each (student, revision) was first graded; the diff view orders revisions by it."""
    now = datetime.now(UTC)
    pairs = sorted(_student_pairs(grades))
    rows = [{"student_id": s, "student_revision": r, "model": model, "first_graded_at": now} for s, r in pairs]
    return root.upsert_table(
        "student_revisions", to_table(rows, STUDENT_REVISIONS), ("student_id", "student_revision"), partition
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
    pairs = grades.select(["student_id", "student_revision"]).group_by(["student_id", "student_revision"]).aggregate([])
    return set(zip(pairs.column("student_id").to_pylist(), pairs.column("student_revision").to_pylist(), strict=True))


# --- new problems' pass rates ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StudentGrade:
    """The student's pass rate on one question and what it cost (rollouts), or a prediction (n = 0)."""

    pass_rate: float | None  # None: no rollout said anything about the student
    source: str  # "rollouts" or the predictor's method name
    n: int = 0
    k: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def student_grades(
    config: ProjectConfig,
    root: DataRoot,
    problems: Sequence[Problem],
    roles: EngineRoles,
    verifier: Verifier,
    *,
    k: int,
    progress: bool,
) -> dict[str, StudentGrade]:
    """The student's pass rate on new problems (not stored as rollouts or grades): from its saved predictor when
    there is one (no model call, and the student is not started), else from `k` rollouts each."""
    path = predictor_path(root, config.student.id)
    if path.is_file():
        features = [
            {"problem_id": p.problem_id, "question": p.question, "family": p.family, "source": p.source}
            for p in problems
        ]
        predictions = PassRatePredictor.load(path).predict(features) if features else []
        return {p.problem_id: StudentGrade(p.p, PREDICTOR_METHOD) for p in predictions}
    result = run_rollouts(
        problems,
        roles.student,
        student_id=config.student.id,
        config=config.rollouts.model_copy(update={"k": k}),
        verifier=verifier,
        progress=progress,
    )
    tally = {p.problem_id: [0, 0, 0, 0] for p in problems}  # prompt tokens, completion tokens, n, k
    for row in result.rollouts.to_pylist():
        counts = tally[row["problem_id"]]
        counts[0] += int(row["prompt_tokens"] or 0)
        counts[1] += int(row["completion_tokens"] or 0)
        if row["verdict"] not in ("timeout", "error"):  # these say nothing about the student (design.md, Verdicts)
            counts[2] += 1
            counts[3] += row["verdict"] == "correct"
    return {
        pid: StudentGrade(c[3] / c[2] if c[2] else None, "rollouts", c[2], c[3], c[0], c[1]) for pid, c in tally.items()
    }
