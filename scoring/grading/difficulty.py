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

import duckdb
import numpy as np
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


TALLY_COLUMNS = ("n", "k", "n_timeout", "n_error", "tokens", "prompt_tokens", "seconds")
_KEYS = ", ".join(DIFFICULTY_KEY)


def tally_sql(relation: str) -> str:
    """DuckDB SQL that tallies rollout evidence per difficulty key: verified samples `n` and successes `k`,
    timeouts and errors apart, tokens and seconds. `relation` is any table, view or `read_parquet(...)` of
    rollouts with `ROLLOUT_EVIDENCE_COLUMNS`; DuckDB aggregates it out of core, one row per key comes back."""
    evidence = "verdict not in ('timeout', 'error')"
    return f"""
        select {_KEYS},
            count(*) filter (where {evidence})::integer as n,
            count(*) filter (where verdict = 'correct')::integer as k,
            count(*) filter (where verdict = 'timeout')::integer as n_timeout,
            count(*) filter (where verdict = 'error')::integer as n_error,
            coalesce(sum(completion_tokens) filter (where {evidence}), 0)::bigint as tokens,
            coalesce(sum(prompt_tokens), 0)::bigint as prompt_tokens,
            -- latencies are stored to 4 decimals: a decimal sum is exact, so the total is the same in any order
            coalesce(sum(latency_s::decimal(18, 4)), 0)::double as seconds
        from {relation}
        group by {_KEYS}
        order by {_KEYS}
    """


def tally_rollouts(rollouts: pa.Table) -> pa.Table:
    """`tally_sql` over an in-memory rollouts table."""
    con = duckdb.connect()
    try:
        con.execute("set threads to 2")
        con.register("evidence", rollouts)
        return con.sql(tally_sql("evidence")).to_arrow_table()
    finally:
        con.close()


def grade_rollouts(
    rollouts: pa.Table,
    *,
    level: float = 0.90,
    bands: BandsConfig | None = None,
    adaptive: AdaptiveConfig | None = None,
) -> pa.Table:
    """Aggregate a rollouts table into the difficulty table (one row per difficulty key); see `grade_tallies`."""
    return grade_tallies(tally_rollouts(rollouts), level=level, bands=bands, adaptive=adaptive)


def grade_tallies(
    tallies: pa.Table,
    *,
    level: float = 0.90,
    bands: BandsConfig | None = None,
    adaptive: AdaptiveConfig | None = None,
) -> pa.Table:
    """The difficulty table from per-key tallies (`tally_sql`'s columns), in their order.

    Fixed K: Beta(1,1) prior, band from the observed pass rate. Adaptive (`adaptive` given): the prior the
    sampler used (fitted per student, revision, sampling config and verifier when it is the pool prior), the
    band the credible interval was certified in when it fits one, and the stop reason — so the table says
    why each problem got the rollouts it got, recomputed from the stored evidence alone.

    Every statistic depends only on (n, k, samples drawn, prior), and a pool holds few distinct such tuples
    (K + 1 of them at fixed K), so each is computed once and spread to its rows by index.
    """
    bands = bands or BandsConfig()
    columns = {name: tallies.column(name).to_numpy() for name in TALLY_COLUMNS}
    pools = list(zip(*(tallies.column(c).to_pylist() for c in DIFFICULTY_KEY[1:]), strict=True))
    priors = _priors(pools, columns["n"], columns["k"], adaptive)
    drawn = columns["n"] + columns["n_timeout"] + columns["n_error"]
    distinct: dict[tuple[int, int, int, tuple[float, float]], int] = {}
    index = np.empty(tallies.num_rows, dtype=np.int64)
    row_priors = [priors.get(pool, UNIFORM_PRIOR) for pool in pools]
    combos = zip(columns["n"].tolist(), columns["k"].tolist(), drawn.tolist(), row_priors, strict=True)
    for row, combo in enumerate(combos):
        index[row] = distinct.setdefault(combo, len(distinct))
    stats = [_statistics(*combo, level, bands, adaptive) for combo in distinct]
    n = columns["n"]
    per_row: dict[str, pa.Array] = {name: tallies.column(name) for name in DIFFICULTY_KEY}
    per_row |= {"family": pa.nulls(tallies.num_rows, pa.string())}
    per_row |= {"n": pa.array(n), "k": pa.array(columns["k"])}
    per_row |= {"n_timeout": pa.array(columns["n_timeout"]), "n_error": pa.array(columns["n_error"])}
    for name in stats[0] if stats else ():
        per_row[name] = pa.array([s[name] for s in stats]).take(pa.array(index))
    safe_n = np.maximum(n, 1)
    per_row["mean_response_tokens"] = pa.array(np.where(n > 0, columns["tokens"] / safe_n, 0.0))
    per_row["tokens_spent"] = pa.array(columns["tokens"] + columns["prompt_tokens"])
    per_row["seconds_spent"] = pa.array(np.round(columns["seconds"], 3))
    if not stats:
        return to_table([], DIFFICULTY)
    return pa.table({name: per_row[name] for name in DIFFICULTY.names}).cast(DIFFICULTY)


def _statistics(
    n: int,
    k: int,
    drawn: int,
    prior: tuple[float, float],
    level: float,
    bands: BandsConfig,
    adaptive: AdaptiveConfig | None,
) -> dict[str, object]:
    """Every statistic of one (n, k, drawn, prior): the pass rate, intervals, posterior, band and stop reason."""
    pass_rate = k / n if n else 0.0
    alpha, beta_, mean, lo, hi = beta_posterior(k, n, *prior, level=level)
    fresh = fresh_group_interval(k, n, prior, n, level) if n else (0.0, 1.0)
    if adaptive is None:
        band, stop_reason = (bands.label(pass_rate) if n else "ungraded"), "fixed_k"
    else:
        state = decide(ProblemState("", n, k, drawn), prior, adaptive, bands)
        band = state.band or (bands.label(pass_rate) if n else "ungraded")
        stop_reason = state.stop_reason or "open"
    wl, wh = wilson_interval(k, n, level)
    jl, jh = jeffreys_interval(k, n, level)
    return {
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
    }


def _priors(
    pools: list[tuple[str, ...]], n: np.ndarray, k: np.ndarray, adaptive: AdaptiveConfig | None
) -> dict[tuple[str, ...], tuple[float, float]]:
    """The pool prior per (student, revision, sampling, verifier) when the adaptive config asks for one."""
    if adaptive is None or adaptive.prior != "pool":
        return {}
    counts: dict[tuple[str, ...], list[tuple[int, int]]] = defaultdict(list)
    for pool, n_i, k_i in zip(pools, n.tolist(), k.tolist(), strict=True):
        counts[pool].append((k_i, n_i))
    return {pool: fit_pool_prior(c) for pool, c in counts.items()}
