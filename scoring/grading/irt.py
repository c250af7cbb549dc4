"""A Rasch (1-parameter logistic) IRT fit across students on a shared problem pool.

P(correct | student s, problem i) = sigmoid(theta_s − b_i). A student is the pair (student_id,
student_revision): revisions are different models and are never pooled. The fit maximises the binomial
log-likelihood of the (n, k) counts plus independent Gaussian priors theta ~ N(0, sd_theta²) and
b ~ N(0, sd_b²) — a MAP estimate. The priors make the problem identifiable (without them adding a constant to
every theta and every b changes nothing) and keep always- or never-solved items finite. L-BFGS-B from zeros
with the analytic gradient is deterministic.

Every row with n > 0 is evidence: rows for the same (student, problem) — other sampling hashes or verifier
versions — are pooled, so select one verifier version first if they disagree. Rows with n = 0 are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from scipy.optimize import minimize
from scipy.special import expit

from scoring.schemas import IRT_ITEMS, IRT_STUDENTS

_NEEDED = ("student_id", "student_revision", "problem_id", "n", "k")


def _objective(
    params: np.ndarray,
    s_idx: np.ndarray,
    i_idx: np.ndarray,
    n: np.ndarray,
    k: np.ndarray,
    n_students: int,
    sd_theta: float,
    sd_b: float,
) -> tuple[float, np.ndarray]:
    """Negative log posterior (up to a constant) and its gradient; params = [theta_0.., b_0..]."""
    theta, b = params[:n_students], params[n_students:]
    eta = theta[s_idx] - b[i_idx]
    # log sigmoid(eta) = -log(1 + e^-eta), log(1 - sigmoid(eta)) = -log(1 + e^eta): stable for any |eta|.
    loglik = -(k * np.logaddexp(0.0, -eta) + (n - k) * np.logaddexp(0.0, eta)).sum()
    penalty = 0.5 * (theta @ theta) / sd_theta**2 + 0.5 * (b @ b) / sd_b**2
    # d loglik / d eta = k − n·sigmoid(eta): observed minus expected successes.
    resid = k - n * expit(eta)
    grad_theta = -np.bincount(s_idx, weights=resid, minlength=n_students) + theta / sd_theta**2
    grad_b = np.bincount(i_idx, weights=resid, minlength=b.size) + b / sd_b**2
    return float(penalty - loglik), np.concatenate([grad_theta, grad_b])


def fit_rasch(
    grades: pa.Table, *, sd_theta: float = 2.0, sd_b: float = 2.0, max_iter: int = 1000
) -> tuple[pa.Table, pa.Table]:
    """Fit theta per student and b per problem from a difficulty table; returns (items, students).

    `items` (IRT_ITEMS) is sorted by problem_id, `students` (IRT_STUDENTS) by (student_id, student_revision).
    Higher difficulty_b = harder problem, higher ability_theta = stronger student, on a shared logit scale.
    Raises ValueError when fewer than 2 students have graded rows: one student cannot be compared to anyone.
    """
    missing = [c for c in _NEEDED if c not in grades.column_names]
    if missing:
        raise ValueError(f"difficulty table lacks columns {missing}; has {grades.column_names}")
    if sd_theta <= 0 or sd_b <= 0:
        raise ValueError(f"prior sds must be positive (sd_theta={sd_theta}, sd_b={sd_b})")
    evidence = _evidence(grades)
    n_students = len(evidence.students)
    result = minimize(
        _objective,
        np.zeros(n_students + len(evidence.problems)),
        args=(evidence.s_idx, evidence.i_idx, evidence.n, evidence.k, n_students, sd_theta, sd_b),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter},
    )
    # The objective is strictly convex, so a line-search stop with a tiny gradient is still the optimum.
    grad_scale = np.abs(result.jac).max() / max(1.0, evidence.n.sum())
    if not result.success and grad_scale > 1e-6:
        raise RuntimeError(f"Rasch fit did not converge: {result.message} (max |gradient|/n = {grad_scale:.2e})")
    return _items_table(evidence, result.x[n_students:]), _students_table(evidence, result.x[:n_students])


@dataclass(frozen=True, slots=True)
class _Evidence:
    """The graded rows (n > 0) as arrays: row r is student `students[s_idx[r]]` on problem `problems[i_idx[r]]`."""

    students: list[tuple[str, str]]  # (student_id, student_revision), sorted
    problems: list[str]  # sorted
    s_idx: np.ndarray
    i_idx: np.ndarray
    n: np.ndarray
    k: np.ndarray

    def totals(self, per: Literal["student", "problem"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Σn, Σk and the number of distinct counterparts (problems of a student, students of a problem) per
        student or per problem; counterparts count (student, problem) pairs once, however many rows pool there."""
        index, size, side = (
            (self.s_idx, len(self.students), 0) if per == "student" else (self.i_idx, len(self.problems), 1)
        )
        pairs = set(zip(self.s_idx.tolist(), self.i_idx.tolist(), strict=True))
        return (
            np.bincount(index, weights=self.n, minlength=size),
            np.bincount(index, weights=self.k, minlength=size),
            np.bincount([pair[side] for pair in pairs], minlength=size),
        )


def _evidence(grades: pa.Table) -> _Evidence:
    cols = {c: grades.column(c).to_pylist() for c in _NEEDED}
    rows = [
        ((sid, rev), pid, int(n), int(k))
        for sid, rev, pid, n, k in zip(*(cols[c] for c in _NEEDED), strict=True)
        if n  # n = 0 (or null) says nothing about the student
    ]
    students = sorted({s for s, _, _, _ in rows})
    if len(students) < 2:
        raise ValueError(
            f"an IRT fit needs at least 2 students (student_id, student_revision) with graded rows (n > 0); "
            f"got {len(students)}: {students}"
        )
    for s, pid, n, k in rows:
        if n < 0 or k < 0 or k > n:
            raise ValueError(f"invalid counts n={n}, k={k} for student {s}, problem {pid!r}: need 0 <= k <= n")
    problems = sorted({pid for _, pid, _, _ in rows})
    s_pos = {s: j for j, s in enumerate(students)}
    i_pos = {p: j for j, p in enumerate(problems)}
    return _Evidence(
        students,
        problems,
        s_idx=np.array([s_pos[s] for s, _, _, _ in rows], dtype=np.intp),
        i_idx=np.array([i_pos[p] for _, p, _, _ in rows], dtype=np.intp),
        n=np.array([n for _, _, n, _ in rows], dtype=np.float64),
        k=np.array([k for _, _, _, k in rows], dtype=np.float64),
    )


def _items_table(evidence: _Evidence, b: np.ndarray) -> pa.Table:
    n_total, k_total, students = evidence.totals("problem")
    return pa.Table.from_pylist(
        [
            {
                "problem_id": pid,
                "difficulty_b": float(b[j]),
                "n_total": int(n_total[j]),
                "k_total": int(k_total[j]),
                "students": int(students[j]),
            }
            for j, pid in enumerate(evidence.problems)
        ],
        schema=IRT_ITEMS,
    )


def _students_table(evidence: _Evidence, theta: np.ndarray) -> pa.Table:
    n_total, k_total, problems = evidence.totals("student")
    return pa.Table.from_pylist(
        [
            {
                "student_id": sid,
                "student_revision": rev,
                "ability_theta": float(theta[j]),
                "n_total": int(n_total[j]),
                "k_total": int(k_total[j]),
                "problems": int(problems[j]),
            }
            for j, (sid, rev) in enumerate(evidence.students)
        ],
        schema=IRT_STUDENTS,
    )
