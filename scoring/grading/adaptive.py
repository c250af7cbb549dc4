"""Adaptive K: sequential rollouts that stop a problem once its band is certain (`../shared/methods.md` §1.2, §4).

Rollouts are drawn in small rounds. After each round every problem's Beta posterior is updated (CurES
bookkeeping, Zeng et al. arXiv 2510.01037) and a problem stops as soon as its equal-tailed credible interval
lies entirely inside one difficulty band (too_hard ≤ 0.1, learnable, too_easy ≥ 0.9 by default), or at `max_k`.
The next round goes to the open problems with the widest intervals first, so a total rollout budget is spent
where the band is least certain (CurES allocates rollouts to the most uncertain prompts).

With a uniform Beta(1,1) prior no problem's 90% interval fits inside too_easy or too_hard before 21 rollouts,
so the default prior is fitted to the pool itself (empirical Bayes: the beta-binomial maximum marginal
likelihood over every problem's counts so far). Pools are usually U-shaped — many problems always or never
solved — and that prior lets a 4-for-4 problem stop early. A per-problem prior (the pass-rate predictor's
Beta, methods §6) can replace it.

The driver is independent of how rollouts are drawn: the pipeline draws them from the engine, the benchmark
replays recorded ones in their sampled order, and both run this same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.optimize import minimize
from scipy.special import betaln
from scipy.stats import betabinom

from scoring.grading.estimators import credible_interval

ADAPTIVE_METHOD = "adaptive_v1"

Band = Literal["too_hard", "learnable", "too_easy"]
Outcome = bool | None  # True correct, False wrong, None no evidence (timeout or engine error)
Draw = Callable[[Mapping[str, tuple[int, int]]], Mapping[str, Sequence[Outcome]]]


class BandsConfig(BaseModel):
    """Difficulty bands on the pass rate: at or below `too_hard`, at or above `too_easy`, else learnable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    too_hard: float = Field(0.1, ge=0.0, lt=1.0)
    too_easy: float = Field(0.9, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> BandsConfig:
        if self.too_hard >= self.too_easy:
            raise ValueError(f"too_hard ({self.too_hard}) must be below too_easy ({self.too_easy})")
        return self

    def label(self, pass_rate: float) -> Band:
        if pass_rate >= self.too_easy:
            return "too_easy"
        if pass_rate <= self.too_hard:
            return "too_hard"
        return "learnable"

    def certain_band(self, lo: float, hi: float) -> Band | None:
        """The band an interval lies entirely inside, or None when it straddles a boundary."""
        if hi <= self.too_hard:
            return "too_hard"
        if lo >= self.too_easy:
            return "too_easy"
        if lo > self.too_hard and hi < self.too_easy:
            return "learnable"
        return None


class AdaptiveConfig(BaseModel):
    """Sequential sampling. `min_k` rollouts first for every problem, then rounds of `round_size`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_k: int = Field(4, ge=1, description="rollouts every problem gets before any may stop")
    max_k: int = Field(16, ge=1, description="no problem gets more rollouts than this")
    round_size: int = Field(2, ge=1, description="rollouts added per open problem per round")
    credible_level: float = Field(
        0.95, gt=0.0, lt=1.0, description="how certain a band must be before a problem stops (see `decide`)"
    )
    budget: int | None = Field(None, ge=1, description="total rollouts for the pool (None: until all stop)")
    prior: Literal["pool", "uniform"] = Field("pool", description="pool: empirical-Bayes Beta fitted to the pool")
    stop_rule: Literal["credible_interval", "predictive"] = Field(
        "predictive", description="what makes a band certain (see `decide`)"
    )

    @model_validator(mode="after")
    def _ordered(self) -> AdaptiveConfig:
        if self.min_k > self.max_k:
            raise ValueError(f"min_k ({self.min_k}) must not exceed max_k ({self.max_k})")
        return self


@dataclass(slots=True)
class ProblemState:
    """Evidence so far for one problem. `drawn` counts sample indices used (errors included), `n` only evidence."""

    problem_id: str
    n: int = 0
    k: int = 0
    drawn: int = 0
    band: Band | None = None
    stop_reason: str | None = None  # band_certain | max_k | budget


@dataclass(frozen=True, slots=True)
class SequentialResult:
    states: dict[str, ProblemState]
    rounds: int
    rollouts_drawn: int
    prior: tuple[float, float]


def fit_pool_prior(counts: Sequence[tuple[int, int]]) -> tuple[float, float]:
    """Beta(α, β) maximising the beta-binomial marginal likelihood of `(k, n)` counts (empirical Bayes).

    α and β are kept in [0.05, 50]; with fewer than 2 graded problems the uniform prior is returned.
    """
    graded = [(k, n) for k, n in counts if n > 0]
    if len(graded) < 2:
        return 1.0, 1.0
    ks = np.array([k for k, _ in graded], dtype=float)
    ns = np.array([n for _, n in graded], dtype=float)

    def negative_log_likelihood(log_ab: np.ndarray) -> float:
        a, b = np.exp(log_ab)
        # log C(n, k) is constant in (a, b) and dropped
        return -float(np.sum(betaln(ks + a, ns - ks + b) - betaln(a, b)))

    bounds = [(math.log(0.05), math.log(50.0))] * 2
    result = minimize(negative_log_likelihood, np.zeros(2), method="L-BFGS-B", bounds=bounds)
    a, b = np.exp(result.x)
    return float(a), float(b)


def decide(state: ProblemState, prior: tuple[float, float], config: AdaptiveConfig, bands: BandsConfig) -> ProblemState:
    """Mark `state` stopped when its band is certain (after `min_k`) or it reached `max_k`.

    `credible_interval`: the posterior interval lies inside one band. `predictive`: the band that `max_k`
    rollouts would show is already known with probability ≥ `credible_level` under the posterior predictive
    (beta-binomial over the rollouts not yet drawn) — curtailed sampling, as in sequential trials.
    """
    if state.stop_reason is not None:
        return state
    if state.drawn >= 2 * config.max_k and state.n < config.max_k:  # errors can't keep a problem open forever
        state.band = bands.label(state.k / state.n) if state.n else None
        state.stop_reason = "max_k"
        return state
    if state.n < min(config.min_k, config.max_k):
        return state
    if state.n >= config.max_k:
        state.band, state.stop_reason = bands.label(state.k / state.n), "max_k"
        return state
    if config.stop_rule == "predictive":
        certain = predictive_band(state.k, state.n, prior, config.max_k, bands, config.credible_level)
    else:
        certain = bands.certain_band(*credible_interval(state.k, state.n, prior, config.credible_level))
    if certain is not None:
        state.band, state.stop_reason = certain, "band_certain"
    return state


def predictive_band(
    k: int, n: int, prior: tuple[float, float], max_k: int, bands: BandsConfig, level: float
) -> Band | None:
    """The band of the pass rate after `max_k` rollouts, when it is this predictable from `k` of `n` so far."""
    remaining = max_k - n
    alpha, beta_ = prior[0] + k, prior[1] + (n - k)
    finals = np.arange(remaining + 1)
    weights = betabinom.pmf(finals, remaining, alpha, beta_)
    mass: dict[Band, float] = {"too_hard": 0.0, "learnable": 0.0, "too_easy": 0.0}
    for extra, weight in zip(finals, weights, strict=True):
        mass[bands.label((k + int(extra)) / max_k)] += float(weight)
    band = max(mass, key=lambda b: mass[b])
    return band if mass[band] >= level else None


def run_sequential(
    problem_ids: Sequence[str],
    draw: Draw,
    config: AdaptiveConfig,
    *,
    bands: BandsConfig | None = None,
    priors: Mapping[str, tuple[float, float]] | None = None,
    initial: Mapping[str, ProblemState] | None = None,
) -> SequentialResult:
    """Draw rounds until every problem stopped or the budget is spent.

    `draw({problem_id: (first_sample, count)})` returns each problem's outcomes for those sample indices.
    `priors` gives a per-problem prior (else the pool prior or uniform, per config). `initial` is evidence
    already stored (a resumed run); its rollouts count towards the budget.
    """
    bands = bands or BandsConfig()
    states = {pid: ProblemState(pid) for pid in problem_ids}
    for pid, stored in (initial or {}).items():
        if pid in states:
            states[pid] = ProblemState(pid, stored.n, stored.k, stored.drawn)
    spent = sum(s.drawn for s in states.values())
    rounds = 0
    pool_prior = (1.0, 1.0)
    while True:
        if config.prior == "pool":
            pool_prior = fit_pool_prior([(s.k, s.n) for s in states.values()])
        for state in states.values():
            decide(state, _prior_for(state.problem_id, priors, pool_prior), config, bands)
        open_states = [s for s in states.values() if s.stop_reason is None]
        if not open_states:
            break
        remaining = None if config.budget is None else config.budget - spent
        if remaining is not None and remaining <= 0:
            break
        plan = _plan_round(open_states, priors, pool_prior, config, remaining)
        if not plan:
            break
        spent += _record(states, plan, draw(plan))
        rounds += 1
    for state in states.values():
        if state.stop_reason is None:
            state.band = bands.label(state.k / state.n) if state.n else None
            state.stop_reason = "budget"
    return SequentialResult(states, rounds, spent, pool_prior)


def _record(
    states: dict[str, ProblemState], plan: Mapping[str, tuple[int, int]], outcomes: Mapping[str, Sequence[Outcome]]
) -> int:
    """Fold one round's outcomes (None: no verdict on the student, True: correct) into the states; the samples
    drawn."""
    spent = 0
    for pid, (first, count) in plan.items():
        got = list(outcomes.get(pid, ()))
        if len(got) != count:
            raise ValueError(f"draw returned {len(got)} outcomes for {pid!r}, expected {count}")
        state = states[pid]
        state.drawn = first + count
        state.n += sum(o is not None for o in got)
        state.k += sum(o is True for o in got)
        spent += count
    return spent


def _prior_for(
    pid: str, priors: Mapping[str, tuple[float, float]] | None, pool_prior: tuple[float, float]
) -> tuple[float, float]:
    if priors is not None and pid in priors:
        return priors[pid]
    return pool_prior


def _plan_round(
    open_states: list[ProblemState],
    priors: Mapping[str, tuple[float, float]] | None,
    pool_prior: tuple[float, float],
    config: AdaptiveConfig,
    remaining: int | None,
) -> dict[str, tuple[int, int]]:
    """Samples to draw next: problems below `min_k` first, then the widest credible intervals first."""

    def urgency(state: ProblemState) -> tuple[int, float, str]:
        lo, hi = credible_interval(state.k, state.n, _prior_for(state.problem_id, priors, pool_prior), 0.9)
        return (0 if state.n < config.min_k else 1, -(hi - lo), state.problem_id)

    plan: dict[str, tuple[int, int]] = {}
    for state in sorted(open_states, key=urgency):
        want = config.min_k - state.n if state.n < config.min_k else config.round_size
        count = max(1, min(want, 2 * config.max_k - state.drawn, config.max_k - state.n))
        if remaining is not None:
            if remaining <= 0:
                break
            count = min(count, remaining)
            remaining -= count
        plan[state.problem_id] = (state.drawn, count)
    return plan
