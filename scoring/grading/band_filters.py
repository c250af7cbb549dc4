"""Pass-rate band filters over the difficulty table (`../shared/methods.md` §5, §15.3–15.4).

Each filter is named and versioned, pure, and decides every input row: the result has one row per input row,
in the same order, with `kept` and — for a dropped row — the `reason`. Nothing is silently dropped, because
dropped items are data too (k = 0 items are candidates for hints or simplification, §15.4).

- `odf_band`: balanced online difficulty filtering (Bae et al., arXiv 2504.03380): keep lo ≤ k/n ≤ hi,
  inclusive; the 0.25–0.75 default keeps every item at ≥ 75% of the maximum reward variance (§1.3).
- `dapo_nonzero`: DAPO dynamic sampling (Yu et al., arXiv 2503.14476): keep 0 < k < n.
- `skywork_1_to_k_minus_1`: Skywork-OR1 offline filter: keep 1 ≤ k ≤ K−1 for a fixed group size K.

A row with n = 0 was never graded and is dropped as `ungraded` by every filter.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scoring.schemas import DIFFICULTY_KEY, FILTER_DECISIONS
from synthesis.registry import Registry

# Every band filter by name; its versioned name (`odf_band_v1`) is the `filter` column of each decision row. Bump
# a filter's version whenever its rule changes.
BAND_FILTERS: Registry[Callable[..., str]] = Registry("band filter")


KEPT = ""
UNGRADED = "ungraded"


class FilterConfig(BaseModel):
    """Which band filter to apply and its parameters (`lo`/`hi` for odf_band, `group_size` for skywork)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="a registered band filter (`BAND_FILTERS`)")
    lo: float = Field(0.25, ge=0.0, le=1.0, description="odf_band: lowest kept pass rate k/n (inclusive)")
    hi: float = Field(0.75, ge=0.0, le=1.0, description="odf_band: highest kept pass rate k/n (inclusive)")
    group_size: int = Field(16, ge=2, description="skywork_1_to_k_minus_1: the fixed rollouts per problem K")

    @field_validator("name")
    @classmethod
    def _known_filter(cls, value: str) -> str:
        return BAND_FILTERS.check(value)

    @model_validator(mode="after")
    def _band_ordered(self) -> FilterConfig:
        if self.lo > self.hi:
            raise ValueError(f"lo ({self.lo}) must be <= hi ({self.hi})")
        return self


@BAND_FILTERS.register("odf_band", description="ODF: keep lo <= k/n <= hi (methods §5)")
def odf_band(n: int, k: int, *, lo: float = 0.25, hi: float = 0.75) -> str:
    """Balanced filtering: the drop reason for k correct of n, or "" when lo ≤ k/n ≤ hi (both inclusive)."""
    _check_counts(n, k)
    if n == 0:
        return UNGRADED
    pass_rate = k / n
    if pass_rate < lo:
        return "below_band"
    if pass_rate > hi:
        return "above_band"
    return KEPT


@BAND_FILTERS.register("dapo_nonzero", description="DAPO dynamic sampling: keep 0 < k < n (methods §5)")
def dapo_nonzero(n: int, k: int) -> str:
    """DAPO dynamic sampling: the drop reason for k correct of n, or "" when 0 < k < n."""
    _check_counts(n, k)
    if n == 0:
        return UNGRADED
    if k == 0:
        return "all_wrong"
    if k == n:
        return "all_correct"
    return KEPT


@BAND_FILTERS.register("skywork_1_to_k_minus_1", description="Skywork-OR1: keep n == K and 1 <= k <= K-1")
def skywork_1_to_k_minus_1(n: int, k: int, *, group_size: int = 16) -> str:
    """Skywork-OR1: the drop reason for k correct of n, or "" when n == group_size and 1 ≤ k ≤ group_size − 1.

    A row graded with a different number of rollouts is dropped as `wrong_group_size (n=…, expected K)`:
    "k between 1 and K−1" only means "neither never nor always solved" when n is K, so say so instead of
    silently mis-filtering (k = 15 of 32 would pass, k = 8 of 8 would be kept as 8 ≤ 15).
    """
    _check_counts(n, k)
    if n == 0:
        return UNGRADED
    if n != group_size:
        return f"wrong_group_size (n={n}, expected {group_size})"
    if k < 1:
        return "never_solved"
    if k > group_size - 1:
        return "always_solved"
    return KEPT


def _check_counts(n: int, k: int) -> None:
    # A corrupt row would otherwise land in some band by accident; refuse it loudly.
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"invalid counts n={n}, k={k}: need 0 <= k <= n")


def _decider(config: FilterConfig) -> Callable[[int, int], str]:
    if config.name == "odf_band":
        return lambda n, k: odf_band(n, k, lo=config.lo, hi=config.hi)
    if config.name == "dapo_nonzero":
        return dapo_nonzero
    return lambda n, k: skywork_1_to_k_minus_1(n, k, group_size=config.group_size)


def apply_filter(grades: pa.Table, config: FilterConfig) -> pa.Table:
    """Decide every row of a difficulty table: a FILTER_DECISIONS table, one row per input row, same order.

    The band is on the observed pass rate k/n computed from the counts (not the Beta posterior mean, which
    pulls few-rollout items toward 0.5); `pass_rate` is null for ungraded rows so they never read as 0%.
    """
    needed = (*DIFFICULTY_KEY, "n", "k")
    missing = [c for c in needed if c not in grades.column_names]
    if missing:
        raise ValueError(f"difficulty table lacks columns {missing}; has {grades.column_names}")
    decide = _decider(config)
    filter_id = BAND_FILTERS.method(config.name)
    # A null count means nothing was graded; treat it as n = 0 rather than crash or guess.
    ns = pc.fill_null(grades.column("n"), 0).cast(pa.int32())
    ks = pc.fill_null(grades.column("k"), 0).cast(pa.int32())
    # a filter decides on (n, k) alone, and a pool holds few distinct pairs: decide each once
    reasons: dict[tuple[int, int], int] = {}
    index = [reasons.setdefault(pair, len(reasons)) for pair in zip(ns.to_pylist(), ks.to_pylist(), strict=True)]
    decided = pa.array([decide(n, k) for n, k in reasons], pa.string())
    reason = decided.take(pa.array(index, pa.int64())) if index else pa.array([], pa.string())
    graded = pc.greater(ns, 0)
    rate = pc.if_else(
        graded,
        pc.divide(ks.cast(pa.float64()), pc.max_element_wise(ns, 1).cast(pa.float64())),
        pa.scalar(None, pa.float64()),
    )
    columns = {c: grades.column(c) for c in DIFFICULTY_KEY}
    columns |= {"filter": pa.repeat(filter_id, grades.num_rows), "kept": pc.equal(reason, KEPT), "reason": reason}
    columns |= {"n": ns, "k": ks, "pass_rate": rate}
    return pa.table(columns).cast(FILTER_DECISIONS)
