"""Per-problem difficulty for one student from its verified rollouts (`../shared/methods.md` §1, §15.4).

One row per (problem_id, student_id, student_revision, sampling_hash, verifier_version): n and k, pass rate,
Wilson and Jeffreys intervals, the Beta(1,1) posterior mean and 90% credible interval (CurES bookkeeping,
arXiv 2510.01037), learnability p(1-p), expected |advantage| for a group of the size used, and the band.
`timeout` and `error` verdicts say nothing about the student, so they are counted apart and left out of n;
`unparseable` counts as a failure (reward 0) — see `../shared/design.md` "Verdicts".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa

from scoring.estimators import (
    beta_posterior,
    expected_abs_advantage,
    jeffreys_interval,
    learnability,
    wilson_interval,
)
from scoring.schemas import DIFFICULTY, DIFFICULTY_KEY, to_table

METHOD = "fixed_k_v1"


@dataclass(frozen=True, slots=True)
class Bands:
    """Difficulty bands on the observed pass rate k/n: at or above `too_easy`, at or below `too_hard`, else
    learnable (methods §5 balanced filtering, default 0.1–0.9). With few rollouts the Beta(1,1) posterior mean
    is pulled toward 0.5 (k = 0 of 4 gives 1/6), so it would call every unsolved problem learnable."""

    too_easy: float = 0.9
    too_hard: float = 0.1

    def label(self, pass_rate: float, n: int) -> str:
        if n == 0:
            return "ungraded"
        if pass_rate >= self.too_easy:
            return "too_easy"
        if pass_rate <= self.too_hard:
            return "too_hard"
        return "learnable"


def grade_rollouts(rollouts: pa.Table, *, level: float = 0.90, bands: Bands | None = None) -> pa.Table:
    """Aggregate a rollouts table into the difficulty table (one row per difficulty key)."""
    bands = bands or Bands()
    groups: dict[tuple[str, ...], dict[str, float]] = defaultdict(
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
    rows = []
    for key in sorted(groups):
        acc = groups[key]
        n, k = int(acc["n"]), int(acc["k"])
        pass_rate = k / n if n else 0.0
        alpha, beta_, mean, lo, hi = beta_posterior(k, n, level=level)
        wl, wh = wilson_interval(k, n, level)
        jl, jh = jeffreys_interval(k, n, level)
        rows.append(
            {
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
                "learnability": learnability(pass_rate),
                "exp_abs_adv": expected_abs_advantage(pass_rate, n),
                "band": bands.label(pass_rate, n),
                "method": METHOD,
                "mean_response_tokens": acc["tokens"] / n if n else 0.0,
                "tokens_spent": int(acc["tokens"] + acc["prompt_tokens"]),
                "seconds_spent": round(acc["seconds"], 3),
            }
        )
    return to_table(rows, DIFFICULTY)
