"""Difficulty statistics against the values and identities in ../shared/methods.md §1."""

from __future__ import annotations

import pytest

from scoring.grading.estimators import (
    beta_posterior,
    expected_abs_advantage,
    jeffreys_interval,
    learnability,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("p", "g", "expected"),
    [
        (0.05, 8, 0.220),
        (0.10, 8, 0.392),
        (0.25, 8, 0.711),
        (0.50, 8, 0.868),
        (0.05, 16, 0.301),
        (0.25, 16, 0.798),
        (0.50, 16, 0.936),
        (0.75, 8, 0.711),
    ],
)
def test_expected_abs_advantage_matches_methods_table(p: float, g: int, expected: float) -> None:
    assert expected_abs_advantage(p, g) == pytest.approx(expected, abs=0.0015)


def test_beta_posterior_is_laplace_with_uniform_prior() -> None:
    alpha, beta, mean, lo, hi = beta_posterior(3, 4)
    assert (alpha, beta) == (4, 2) and mean == pytest.approx(4 / 6)
    assert 0 < lo < mean < hi < 1
    assert beta_posterior(0, 4)[2] == pytest.approx(1 / 6)


def test_intervals_behave_at_the_edges() -> None:
    lo, hi = wilson_interval(0, 4)
    assert lo == 0.0 and 0 < hi < 1
    lo, hi = wilson_interval(4, 4)
    assert 0 < lo < 1 and hi == pytest.approx(1.0)
    assert jeffreys_interval(0, 4)[0] == 0.0 and jeffreys_interval(4, 4)[1] == 1.0
    narrow, wide = wilson_interval(50, 100), wilson_interval(5, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_learnability_peaks_at_half() -> None:
    assert learnability(0.5) == 0.25 and learnability(0.0) == learnability(1.0) == 0.0


def test_credible_interval_reaches_the_boundary_a_never_or_always_solved_problem_shows() -> None:
    from scoring.grading.estimators import credible_interval

    lo, hi = credible_interval(0, 8, (1.0, 1.0), 0.9)
    assert lo == 0.0 and 0.0 < hi < 0.3
    lo, hi = credible_interval(8, 8, (1.0, 1.0), 0.9)
    assert hi == 1.0 and 0.7 < lo < 1.0
    lo, hi = credible_interval(4, 8, (1.0, 1.0), 0.9)
    assert 0 < lo < 0.5 < hi < 1 and abs((0.5 - lo) - (hi - 0.5)) < 1e-9, "symmetric data, symmetric interval"
    assert credible_interval(0, 0, (1.0, 1.0)) == (0.0, 1.0)


def test_fresh_group_interval_is_wider_than_the_credible_interval_and_covers_re_rollouts() -> None:
    import numpy as np

    from scoring.grading.estimators import credible_interval, fresh_group_interval

    lo, hi = credible_interval(5, 10, (1.0, 1.0), 0.9)
    f_lo, f_hi = fresh_group_interval(5, 10, (1.0, 1.0), 10, 0.9)
    assert f_lo < lo and f_hi > hi, "a fresh group adds its own sampling noise"
    rng = np.random.default_rng(0)
    inside = 0
    for _ in range(400):
        p = rng.uniform()
        k = int(rng.binomial(10, p))
        fresh = rng.binomial(10, p) / 10
        a, b = fresh_group_interval(k, 10, (1.0, 1.0), 10, 0.9)
        inside += a <= fresh <= b
    assert inside / 400 >= 0.88
