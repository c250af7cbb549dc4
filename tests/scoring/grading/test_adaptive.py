"""Adaptive K: the pool prior, the stopping rule, budget allocation and resuming, on replayed outcomes."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import beta as beta_dist
from scipy.stats import betabinom

import scoring.grading.adaptive as adaptive
from scoring.grading.adaptive import (
    AdaptiveConfig,
    BandsConfig,
    ProblemState,
    fit_pool_prior,
    run_sequential,
)
from scoring.grading.difficulty import grade_rollouts
from scoring.schemas import ROLLOUTS, to_table


class Replay:
    """Serves recorded outcomes by sample index and remembers every index it was asked for."""

    def __init__(self, outcomes: Mapping[str, list[bool | None]]) -> None:
        self.outcomes = outcomes
        self.asked: dict[str, list[int]] = {pid: [] for pid in outcomes}

    def __call__(self, plan: Mapping[str, tuple[int, int]]) -> dict[str, list[bool | None]]:
        got = {}
        for pid, (first, count) in plan.items():
            self.asked[pid] += list(range(first, first + count))
            got[pid] = self.outcomes[pid][first : first + count]
        return got


def _pool(seed: int = 0, problems: int = 300, k: int = 32) -> dict[str, list[bool | None]]:
    rng = np.random.default_rng(seed)
    rates = rng.beta(0.3, 0.5, size=problems)
    return {f"p{i:03d}": [bool(x) for x in rng.random(k) < rate] for i, rate in enumerate(rates)}


def test_pool_prior_recovers_a_u_shaped_beta() -> None:
    outcomes = _pool(problems=600)
    alpha, beta = fit_pool_prior([(sum(o), len(o)) for o in outcomes.values()])
    assert alpha == pytest.approx(0.3, rel=0.3) and beta == pytest.approx(0.5, rel=0.3)
    assert fit_pool_prior([(3, 4)]) == (1.0, 1.0), "one problem is no pool"


def test_all_correct_stops_early_with_the_pool_prior_but_not_with_uniform() -> None:
    outcomes = _pool()
    outcomes["easy"] = [True] * 32
    config = AdaptiveConfig(min_k=4, max_k=16, round_size=2)
    pooled = run_sequential(list(outcomes), Replay(outcomes), config)
    easy = pooled.states["easy"]
    assert easy.stop_reason == "band_certain" and easy.band == "too_easy" and easy.n < 16
    # a uniform prior's 90% interval cannot fit inside [0.9, 1] before ~28 rollouts
    uniform_ci = config.model_copy(update={"prior": "uniform", "stop_rule": "credible_interval"})
    uniform = run_sequential(list(outcomes), Replay(outcomes), uniform_ci)
    assert uniform.states["easy"].stop_reason == "max_k" and uniform.states["easy"].n == 16
    assert pooled.rollouts_drawn < uniform.rollouts_drawn < 16 * len(outcomes)


def _label(rate: float) -> str:
    """The default bands written out (too_hard <= 0.1 < learnable < 0.9 <= too_easy), independent of BandsConfig."""
    return "too_easy" if rate >= 0.9 else "too_hard" if rate <= 0.1 else "learnable"


def test_stopped_bands_match_the_certified_interval_and_indices_are_never_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcomes = _pool(seed=1)
    for rule in ("predictive", "credible_interval"):
        # The pool prior is refitted every round, so record the prior each stop was decided under.
        stops: dict[str, tuple[tuple[float, float], int, int]] = {}

        def recording_decide(
            state: ProblemState,
            prior: tuple[float, float],
            config: AdaptiveConfig,
            bands: BandsConfig,
            real: Callable[..., ProblemState] = adaptive.decide,
            stops: dict[str, tuple[tuple[float, float], int, int]] = stops,
        ) -> ProblemState:
            was_open = state.stop_reason is None
            decided = real(state, prior, config, bands)
            if was_open and decided.stop_reason == "band_certain":
                stops[state.problem_id] = (prior, decided.k, decided.n)
            return decided

        monkeypatch.setattr(adaptive, "decide", recording_decide)
        replay = Replay(outcomes)
        config = AdaptiveConfig(min_k=4, max_k=16, round_size=2, stop_rule=rule)
        result = run_sequential(list(outcomes), replay, config)
        certain = {pid: s for pid, s in result.states.items() if s.stop_reason == "band_certain"}
        # Not vacuous: most of the pool stops early, in more than one band (predictive: all three).
        assert len(certain) > len(outcomes) // 2
        expected_bands = {"too_hard", "learnable", "too_easy"} if rule == "predictive" else {"too_hard", "learnable"}
        assert {s.band for s in certain.values()} >= expected_bands
        for pid, state in result.states.items():
            assert replay.asked[pid] == list(range(state.drawn)), "samples are drawn in order, each once"
            assert 4 <= state.n <= 16
            if state.stop_reason != "band_certain":
                assert state.stop_reason == "max_k" and state.n == 16
                assert state.band == _label(state.k / 16)
                continue
            (a, b), k, n = stops[pid]
            assert (k, n) == (state.k, state.n)
            # Recomputed with scipy at the configured level, not with the module's own helpers.
            if rule == "predictive":
                finals = np.arange(16 - n + 1)
                pmf = betabinom.pmf(finals, 16 - n, a + k, b + n - k)
                mass = sum(w for extra, w in zip(finals, pmf, strict=True) if _label((k + extra) / 16) == state.band)
                assert mass >= config.credible_level, (pid, state, mass)
            else:
                # Equal-tailed, but one-sided when k = 0 or k = n
                # (scoring.grading.estimators.credible_interval's convention).
                level = config.credible_level
                tail = {0: (0.0, level), n: (1 - level, 1.0)}.get(k, ((1 - level) / 2, (1 + level) / 2))
                lo, hi = beta_dist.ppf(tail, a + k, b + n - k)
                assert _label(lo) == _label(hi) == state.band, (pid, state, lo, hi)


def test_budget_goes_to_the_widest_intervals_and_is_never_exceeded() -> None:
    outcomes: dict[str, list[bool | None]] = {pid: [False] * 32 for pid in ("narrow", "wide", "middle")}
    stored = {"narrow": ProblemState("narrow", 10, 0, 10), "wide": ProblemState("wide", 2, 0, 2)}
    stored["middle"] = ProblemState("middle", 6, 0, 6)
    config = AdaptiveConfig(
        min_k=2, max_k=16, round_size=2, budget=18 + 4, prior="uniform", stop_rule="credible_interval"
    )
    replay = Replay(outcomes)
    result = run_sequential(list(outcomes), replay, config, initial=stored)
    assert result.rollouts_drawn == 22, "stored rollouts count towards the budget, and it is spent exactly"
    assert replay.asked["wide"] == [2, 3] and replay.asked["middle"] == [6, 7] and replay.asked["narrow"] == []
    assert {s.stop_reason for s in result.states.values()} == {"budget"}


def test_errors_are_not_evidence_and_cannot_keep_a_problem_open() -> None:
    outcomes: dict[str, list[bool | None]] = {"flaky": [None] * 40, "ok": [None, True] * 20}
    result = run_sequential(list(outcomes), Replay(outcomes), AdaptiveConfig(min_k=2, max_k=4, prior="uniform"))
    assert result.states["flaky"].n == 0 and result.states["flaky"].stop_reason == "max_k"
    assert result.states["flaky"].drawn == 8
    assert result.states["ok"].n == result.states["ok"].k <= 4


def test_resuming_from_stored_evidence_continues_the_sample_sequence() -> None:
    outcomes = _pool(seed=2, problems=40)
    config = AdaptiveConfig(min_k=4, max_k=16, round_size=2)
    first = run_sequential(list(outcomes), Replay(outcomes), config.model_copy(update={"budget": 200}))
    stored = {pid: ProblemState(pid, s.n, s.k, s.drawn) for pid, s in first.states.items()}
    replay = Replay(outcomes)
    resumed = run_sequential(list(outcomes), replay, config, initial=stored)
    whole = run_sequential(list(outcomes), Replay(outcomes), config)
    for pid, state in resumed.states.items():
        assert all(i >= stored[pid].drawn for i in replay.asked[pid]), "stored samples are not drawn again"
        assert state.stop_reason in {"band_certain", "max_k"}
    assert resumed.rollouts_drawn >= first.rollouts_drawn
    agree = sum(resumed.states[p].band == whole.states[p].band for p in outcomes)
    assert agree >= 0.9 * len(outcomes)


def test_bad_configs_name_the_problem() -> None:
    with pytest.raises(ValidationError, match="min_k"):
        AdaptiveConfig(min_k=8, max_k=4)
    with pytest.raises(ValidationError, match="too_hard"):
        BandsConfig(too_hard=0.6, too_easy=0.5)
    with pytest.raises(ValueError, match="expected 2"):
        run_sequential(["a"], lambda plan: {"a": [True]}, AdaptiveConfig(min_k=2))


def _rows(pid: str, verdicts: list[str]) -> list[dict[str, object]]:
    return [
        {
            "problem_id": pid,
            "student_id": "s",
            "student_revision": "r",
            "sampling_hash": "h",
            "sample_index": i,
            "verdict": v,
            "verifier_version": "v",
            "completion_tokens": 3,
            "prompt_tokens": 5,
            "latency_s": 0.1,
        }
        for i, v in enumerate(verdicts)
    ]


def test_adaptive_grades_record_method_prior_and_stop_reason() -> None:
    rows = []
    for i in range(30):
        rows += _rows(f"zero{i}", ["wrong"] * 4)
    rows += _rows("half", ["correct", "wrong"] * 4) + _rows("one", ["correct"] * 6)
    table = to_table(rows, ROLLOUTS)
    graded = {r["problem_id"]: r for r in grade_rollouts(table, adaptive=AdaptiveConfig()).to_pylist()}
    assert graded["zero0"]["method"] == "adaptive_v1" and graded["zero0"]["stop_reason"] == "band_certain"
    assert graded["zero0"]["band"] == "too_hard" and graded["zero0"]["prior_beta"] > graded["zero0"]["prior_alpha"]
    assert graded["half"]["band"] == "learnable"
    fixed = {r["problem_id"]: r for r in grade_rollouts(table).to_pylist()}
    assert fixed["zero0"]["method"] == "fixed_k_v1" and fixed["zero0"]["prior_alpha"] == 1.0
    assert fixed["zero0"]["stop_reason"] == "fixed_k"
