"""The Rasch IRT fit: recovery of known parameters on synthetic data, ordering, and input checks."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.optimize import check_grad
from scipy.stats import spearmanr

from scoring.grading.irt import IRT_ITEMS, IRT_STUDENTS, _objective, fit_rasch
from scoring.schemas import DIFFICULTY, to_table


def _row(student: str, pid: str, n: int, k: int, *, revision: str = "r1", hash_: str = "h") -> dict[str, object]:
    return {
        "problem_id": pid,
        "student_id": student,
        "student_revision": revision,
        "sampling_hash": hash_,
        "verifier_version": "math_verify_v1",
        "n": n,
        "k": k,
        "pass_rate": k / n if n else 0.0,
    }


def _synthetic(seed: int = 7) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """3 students × 60 problems × 16 rollouts drawn from known theta and b."""
    rng = np.random.default_rng(seed)
    theta = np.array([-1.0, 0.3, 1.5])
    b = rng.normal(0.0, 1.5, size=60)
    p = 1.0 / (1.0 + np.exp(-(theta[:, None] - b[None, :])))
    k = rng.binomial(16, p)
    rows = [_row(f"s{s}", f"p{i:02d}", 16, int(k[s, i])) for s in range(3) for i in range(60)]
    return to_table(rows, DIFFICULTY), theta, b


def test_recovers_known_parameters() -> None:
    table, theta, b = _synthetic()
    items, students = fit_rasch(table)
    assert items.schema == IRT_ITEMS and students.schema == IRT_STUDENTS
    assert items.column("problem_id").to_pylist() == [f"p{i:02d}" for i in range(60)]
    assert students.column("student_id").to_pylist() == ["s0", "s1", "s2"]
    fitted_b = np.array(items.column("difficulty_b").to_pylist())
    assert spearmanr(fitted_b, b).statistic > 0.8
    fitted_theta = np.array(students.column("ability_theta").to_pylist())
    assert list(np.argsort(fitted_theta)) == list(np.argsort(theta))
    # The shared scale: ability gaps come back roughly right (the priors shrink them a little).
    assert fitted_theta[2] - fitted_theta[0] == pytest.approx(theta[2] - theta[0], abs=0.6)
    assert set(items.column("students").to_pylist()) == {3}
    assert set(items.column("n_total").to_pylist()) == {48}
    assert students.column("problems").to_pylist() == [60, 60, 60]
    assert sum(students.column("k_total").to_pylist()) == sum(items.column("k_total").to_pylist())


def test_deterministic() -> None:
    table, _, _ = _synthetic(seed=3)
    first, second = fit_rasch(table), fit_rasch(table)
    assert first[0].equals(second[0]) and first[1].equals(second[1])


def test_stronger_student_gets_higher_theta_and_harder_item_higher_b() -> None:
    # (k_weak, k_strong) of 16 per problem: the strong student solves more of every one.
    counts = [(2, 3), (5, 8), (8, 12), (10, 14), (0, 1), (1, 2)]
    rows = []
    for i, (k_weak, k_strong) in enumerate(counts):
        rows.append(_row("weak", f"q{i}", 16, k_weak))
        rows.append(_row("strong", f"q{i}", 16, k_strong))
    items, students = fit_rasch(to_table(rows, DIFFICULTY))
    theta = {row["student_id"]: row["ability_theta"] for row in students.to_pylist()}
    assert theta["strong"] > theta["weak"]
    b = items.column("difficulty_b").to_pylist()
    # q4 (0 and 1 of 16 solved) is harder than q3 (10 and 14 of 16); never-solved items stay finite.
    assert b[4] > b[3] and all(np.isfinite(b))


def test_revisions_are_separate_students_and_ungraded_rows_skipped() -> None:
    rows = [_row("m", f"p{i}", 8, 2, revision="r1") for i in range(4)]
    rows += [_row("m", f"p{i}", 8, 6, revision="r2") for i in range(4)]
    rows.append(_row("m", "p_unseen", 0, 0, revision="r2"))
    # A second sampling hash for the same pair is pooled as extra evidence, not a second student.
    rows.append(_row("m", "p0", 8, 6, revision="r2", hash_="h2"))
    items, students = fit_rasch(to_table(rows, DIFFICULTY))
    assert students.column("student_revision").to_pylist() == ["r1", "r2"]
    assert "p_unseen" not in items.column("problem_id").to_pylist()
    r2 = students.to_pylist()[1]
    assert (r2["n_total"], r2["k_total"], r2["problems"]) == (40, 30, 4)
    assert r2["ability_theta"] > students.to_pylist()[0]["ability_theta"]
    assert items.to_pylist()[0]["students"] == 2


def test_fewer_than_two_students_raises() -> None:
    rows = [_row("only", f"p{i}", 16, 8) for i in range(5)]
    with pytest.raises(ValueError, match="at least 2 students"):
        fit_rasch(to_table(rows, DIFFICULTY))
    # A second student with only ungraded rows does not count.
    rows.append(_row("other", "p0", 0, 0))
    with pytest.raises(ValueError, match="got 1"):
        fit_rasch(to_table(rows, DIFFICULTY))
    with pytest.raises(ValueError, match="at least 2 students"):
        fit_rasch(to_table([], DIFFICULTY))


def test_bad_input_raises() -> None:
    rows = [_row("a", "p0", 4, 5), _row("b", "p0", 4, 2)]
    with pytest.raises(ValueError, match="k=5"):
        fit_rasch(to_table(rows, DIFFICULTY))
    with pytest.raises(ValueError, match="lacks columns"):
        fit_rasch(to_table(rows, DIFFICULTY).drop_columns(["n"]))
    with pytest.raises(ValueError, match="positive"):
        fit_rasch(to_table(rows, DIFFICULTY), sd_b=0.0)


def test_analytic_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    s_idx, i_idx = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 2, 1])
    n = np.array([16.0, 8.0, 16.0, 4.0, 16.0])
    k = np.array([3.0, 8.0, 0.0, 2.0, 11.0])
    args = (s_idx, i_idx, n, k, 3, 2.0, 1.5)
    for _ in range(3):
        x = rng.normal(0.0, 1.0, size=6)
        err = check_grad(lambda p: _objective(p, *args)[0], lambda p: _objective(p, *args)[1], x)
        assert err < 1e-4
