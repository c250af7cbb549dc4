"""Per-problem difficulty for one student from its verified rollouts (`../shared/methods.md` §1, §15.4).

One row per (problem_id, student_id, student_revision, sampling_hash, verifier_version): n and k, pass rate,
Wilson and Jeffreys intervals, the Beta posterior mean and 90% credible interval (CurES bookkeeping, arXiv
2510.01037; a Beta(1,1) prior for fixed K, the sampler's prior for adaptive K), learnability p(1-p), expected
|advantage| for a group of the size used, and the band.
`timeout` and `error` verdicts say nothing about the student, so they are counted apart and left out of n;
`unparseable` counts as a failure (reward 0) — see `../shared/design.md` "Verdicts".
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from scoring.grading.adaptive import ADAPTIVE_METHOD, AdaptiveConfig, BandsConfig, ProblemState, decide, fit_pool_prior
from scoring.grading.estimators import (
    beta_posterior,
    expected_abs_advantage,
    fresh_group_interval,
    jeffreys_interval,
    learnability,
    wilson_interval,
)
from scoring.schemas import DIFFICULTY, DIFFICULTY_KEY, to_table

METHOD = "fixed_k_v1"
UNIFORM_PRIOR = (1.0, 1.0)


def grade_rollouts(
    rollouts: pa.Table,
    *,
    level: float = 0.90,
    bands: BandsConfig | None = None,
    adaptive: AdaptiveConfig | None = None,
) -> pa.Table:
    """Aggregate a rollouts table into the difficulty table (one row per difficulty key).

    Fixed K: Beta(1,1) prior, band from the observed pass rate. Adaptive (`adaptive` given): the prior the
    sampler used (fitted per student, revision, sampling config and verifier when it is the pool prior), the
    band the credible interval was certified in when it fits one, and the stop reason — so the table says
    why each problem got the rollouts it got, recomputed from the stored evidence alone.
    """
    bands = bands or BandsConfig()
    groups = _tally(rollouts)
    priors = _priors(groups, adaptive)
    rows = [
        _difficulty_row(key, groups[key], priors.get(key[1:], UNIFORM_PRIOR), level, bands, adaptive)
        for key in sorted(groups)
    ]
    return to_table(rows, DIFFICULTY)


_Tally = dict[str, float]


def _tally(rollouts: pa.Table) -> dict[tuple[str, ...], _Tally]:
    """Per difficulty key: verified samples n and successes k, timeouts and errors apart, tokens and seconds."""
    groups: dict[tuple[str, ...], _Tally] = defaultdict(
        lambda: {"n": 0, "k": 0, "timeout": 0, "error": 0, "tokens": 0, "prompt_tokens": 0, "seconds": 0.0}
    )
    for row in rollouts.to_pylist():
        key = tuple(row[c] for c in DIFFICULTY_KEY)
        acc = groups[key]
        verdict = row["verdict"]
        if verdict == "timeout":
            acc["timeout"] += 1
        elif verdict == "error":
            acc["error"] += 1
        else:
            acc["n"] += 1
            acc["k"] += verdict == "correct"
            acc["tokens"] += row["completion_tokens"] or 0
        acc["prompt_tokens"] += row["prompt_tokens"] or 0
        acc["seconds"] += row["latency_s"] or 0.0
    return groups


def _difficulty_row(
    key: tuple[str, ...],
    acc: _Tally,
    prior: tuple[float, float],
    level: float,
    bands: BandsConfig,
    adaptive: AdaptiveConfig | None,
) -> dict[str, object]:
    n, k = int(acc["n"]), int(acc["k"])
    pass_rate = k / n if n else 0.0
    alpha, beta_, mean, lo, hi = beta_posterior(k, n, *prior, level=level)
    fresh = fresh_group_interval(k, n, prior, n, level) if n else (0.0, 1.0)
    if adaptive is None:
        band, stop_reason = (bands.label(pass_rate) if n else "ungraded"), "fixed_k"
    else:
        state = decide(ProblemState(key[0], n, k, n + int(acc["timeout"] + acc["error"])), prior, adaptive, bands)
        band = state.band or (bands.label(pass_rate) if n else "ungraded")
        stop_reason = state.stop_reason or "open"
    wl, wh = wilson_interval(k, n, level)
    jl, jh = jeffreys_interval(k, n, level)
    return {
        **dict(zip(DIFFICULTY_KEY, key, strict=True)),
        "n": n,
        "k": k,
        "n_timeout": int(acc["timeout"]),
        "n_error": int(acc["error"]),
        "pass_rate": pass_rate,
        "wilson_lo": wl,
        "wilson_hi": wh,
        "jeffreys_lo": jl,
        "jeffreys_hi": jh,
        "beta_alpha": alpha,
        "beta_beta": beta_,
        "post_mean": mean,
        "post_lo": lo,
        "post_hi": hi,
        "fresh_lo": fresh[0],
        "fresh_hi": fresh[1],
        "learnability": learnability(pass_rate),
        "exp_abs_adv": expected_abs_advantage(pass_rate, n),
        "band": band,
        "method": METHOD if adaptive is None else ADAPTIVE_METHOD,
        "stop_reason": stop_reason,
        "prior_alpha": prior[0],
        "prior_beta": prior[1],
        "mean_response_tokens": acc["tokens"] / n if n else 0.0,
        "tokens_spent": int(acc["tokens"] + acc["prompt_tokens"]),
        "seconds_spent": round(acc["seconds"], 3),
    }


def _priors(
    groups: dict[tuple[str, ...], _Tally], adaptive: AdaptiveConfig | None
) -> dict[tuple[str, ...], tuple[float, float]]:
    """The pool prior per (student, revision, sampling, verifier) when the adaptive config asks for one."""
    if adaptive is None or adaptive.prior != "pool":
        return {}
    pools: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for key, acc in groups.items():
        pools[key[1:]].append((int(acc["k"]), int(acc["n"])))
    return {pool: fit_pool_prior(counts) for pool, counts in pools.items()}
