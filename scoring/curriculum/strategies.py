"""Curriculum strategies: the order in which graded problems go into the shards (`shards.py` writes them with a
manifest and reads them back in order). Strategies are offline schedules, each named and versioned (`<name>_v1`):

- `easy_to_hard`: Beta posterior mean, highest (easiest) first, ties by problem id.
- `staged`: stages cut at posterior-mean boundaries (`stage_bounds`, easy stage first); within a stage the
  order is a seeded shuffle, so a batch mixes the stage's problems (staged curricula, methods §12 notes why a
  strict global order goes stale: ADCL re-sorts within the upcoming chunk).
- `balanced_band`: only problems whose posterior mean lies in `band` (default 0.25–0.75, methods §5.1: every
  kept item has ≥ 75% of the maximal p(1−p)), closest to p = 0.5 first; the rest are excluded as `out_of_band`.
- `skill_balanced`: a smooth weighted round-robin over categories (skill ids when a skill map is given, else
  the family), each category easy→hard inside, so no category dominates any stretch of the curriculum.
- `mixed_sources`: a smooth weighted round-robin over sources in the configured proportions (`source_mix`);
  problems beyond a source's share are excluded as `over_quota`, so the proportions hold over the whole run.
- `cures`: CurES's prompt distribution (methods §4, Zeng et al., arXiv 2510.01037): ρ(x) ∝ exp(sqrt(p(1−p))/τ)
  with p the posterior mean; the order is a seeded draw without replacement from ρ (Efraimidis–Spirakis keys),
  so medium problems tend to come first, and `weight` is ρ(x)·N (mean 1) for trainers that sample by weight.
- `gain_rl`: GAIN-RL's ordering rule (methods §16; Wang et al., arXiv 2506.02281): the student's own angle
  concentration (`scoring.training.angles`, passed to `plan_curriculum` as `signals`), highest first, ties by
  problem id. Like `random` it keeps signal-free problems: it orders by the model's signal, not by grades; a
  problem with no angle score is excluded as `no_angle_signal`.

Every strategy first excludes problems with no learning signal: every rollout solved (k = n) or none did
(k = 0) — `../shared/methods.md` §1.3, §15.4 (Skywork-OR1's 0 < k < n rule) — and ungraded ones, each written to
`curriculum_excluded` with its reason. Every row also carries its difficulty `stage` (by `stage_bounds`), its
`category`, a sampling `weight` (1.0 unless STAT-Sel weights are given) and, with `length_budget`, a
`token_budget` that decays along the curriculum as in Train Long, Think Short (methods §11).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scoring.schemas import CURRICULUM_EXCLUDED, SHARD, to_table
from synthesis.registry import Registry

# Every offline schedule, by name; the versioned name (`easy_to_hard_v1`) is the `strategy` column and the shard
# directory. Bump a strategy's version whenever its order changes.
STRATEGIES: Registry[Callable[[list[dict[str, Any]], CurriculumConfig], Ordered]] = Registry("curriculum strategy")


# Strategies that keep graded problems without learning signal (all rollouts right or all wrong): the control arm.
KEEPS_SIGNAL_FREE = frozenset({"random", "gain_rl"})


class LengthBudget(BaseModel):
    """Token budget per problem, decaying from `start` to `end` in `decays` steps spread evenly over the
    curriculum (methods §11: interval I = total/(decays+1); exponential factor d = (end/start)^(1/decays);
    the paper's main runs decay 256 → 87)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: int = Field(256, ge=1, description="tokens at the start of the curriculum")
    end: int = Field(87, ge=1, description="tokens after the last decay")
    decays: int = Field(3, ge=1, le=1000, description="number of decay points")
    shape: Literal["exponential", "linear"] = "exponential"

    def at(self, position: int, total: int) -> int:
        """The budget of the problem at `position` in a curriculum of `total` problems."""
        interval = max(total, 1) / (self.decays + 1)
        step = min(int(position // interval), self.decays)
        if self.shape == "linear":
            return max(1, round(self.start - (self.start - self.end) * step / self.decays))
        factor = (self.end / self.start) ** (1 / self.decays)
        return max(1, round(self.start * factor**step))


class CurriculumConfig(BaseModel):
    """Which offline schedule orders the shards, and its knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field("easy_to_hard", description="offline schedule: a registered strategy (`STRATEGIES`)")
    shard_size: int = Field(16, ge=1, description="problems per shard")
    stage_bounds: tuple[float, ...] = Field(
        (0.75, 0.5, 0.25), description="posterior-mean cut points, descending: stage 0 is ≥ the first"
    )
    band: tuple[float, float] = Field((0.25, 0.75), description="balanced_band: posterior-mean band kept")
    source_mix: dict[str, float] = Field(
        default_factory=dict, description="mixed_sources: source → share (normalized); unlisted sources excluded"
    )
    seed: int = Field(
        0, ge=0, description="staged: the within-stage shuffle; cures: the draw from ρ; random: the order"
    )
    cures_temperature: float = Field(
        0.1, gt=0.0, le=10.0, description="cures: τ in exp(sqrt(p(1-p))/τ) (ours; the paper tunes τ)"
    )
    length_budget: LengthBudget | None = Field(None, description="write a decaying token_budget column")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        return STRATEGIES.check(value)

    @model_validator(mode="after")
    def _check(self) -> CurriculumConfig:
        bounds = self.stage_bounds
        if any(not 0.0 < b < 1.0 for b in bounds) or list(bounds) != sorted(set(bounds), reverse=True):
            raise ValueError(f"stage_bounds must be distinct, strictly descending and inside (0, 1); got {bounds}")
        lo, hi = self.band
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"band must satisfy 0 <= lo < hi <= 1; got {self.band}")
        if any(share < 0 or not math.isfinite(share) for share in self.source_mix.values()):
            raise ValueError(f"source_mix shares must be finite and >= 0; got {self.source_mix}")
        if self.strategy == "mixed_sources" and sum(self.source_mix.values()) <= 0:
            raise ValueError("strategy mixed_sources needs source_mix with at least one positive share")
        return self

    @property
    def strategy_id(self) -> str:
        """The versioned strategy name: the shard directory and the `strategy` column."""
        return STRATEGIES.method(self.strategy)


@dataclass(frozen=True, slots=True)
class CurriculumPlan:
    ordered: pa.Table  # shard rows in curriculum order (SHARD schema, without the shard name)
    excluded: pa.Table  # CURRICULUM_EXCLUDED rows


def exclusion_reason(n: int, k: int) -> str | None:
    if n == 0:
        return "ungraded: no verified rollout for this student, revision and sampling config"
    if k == n:
        return f"too_easy: all {n} rollouts correct (no learning signal)"
    if k == 0:
        return f"too_hard: all {n} rollouts failed (no learning signal)"
    return None


def difficulty_stage(post_mean: float, bounds: tuple[float, ...]) -> int:
    """0 for the easiest stage (posterior mean ≥ bounds[0]), len(bounds) for the hardest."""
    return next((stage for stage, bound in enumerate(bounds) if post_mean >= bound), len(bounds))


def _easy_first(row: dict[str, Any]) -> tuple[float, str]:
    return (-row["post_mean"], row["problem_id"])


def _weighted_round_robin(groups: dict[str, list[dict[str, Any]]], shares: dict[str, float]) -> list[dict[str, Any]]:
    """Interleave groups so every prefix follows `shares` as closely as integers allow (smooth weighted
    round-robin: each turn every open group gains its share, the richest — ties by name — gives one item and
    pays the total). A group that runs out leaves the rotation."""
    queues = {name: list(rows) for name, rows in sorted(groups.items()) if rows and shares.get(name, 0) > 0}
    credit = dict.fromkeys(queues, 0.0)
    out: list[dict[str, Any]] = []
    while queues:
        total = sum(shares[name] for name in queues)
        for name in queues:
            credit[name] += shares[name]
        pick = max(queues, key=credit.__getitem__)  # the first in name order wins a tie
        credit[pick] -= total
        out.append(queues[pick].pop(0))
        if not queues[pick]:
            del queues[pick], credit[pick]
    return out


def _by(rows: list[dict[str, Any]], column: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=_easy_first):
        groups.setdefault(str(row[column]), []).append(row)
    return groups


Ordered = tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]


@STRATEGIES.register("easy_to_hard", description="post_mean descending (easy to hard), ties by problem_id")
def _easy_to_hard(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    return sorted(rows, key=_easy_first), []


@STRATEGIES.register(
    "hard_to_easy", description="post_mean ascending (hard to easy), ties by problem_id (a negative control)"
)
def _hard_to_easy(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    return sorted(rows, key=lambda r: (r["post_mean"], r["problem_id"])), []


@STRATEGIES.register(
    "random", description="seeded uniform order over every graded problem, signal-free ones included (the control)"
)
def _random(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    ordered = sorted(rows, key=lambda r: r["problem_id"])  # input order must not matter, only the seed
    return [ordered[i] for i in np.random.default_rng(config.seed).permutation(len(ordered))], []


@STRATEGIES.register("staged", description="stages by stage_bounds, easy first; seeded shuffle within a stage")
def _staged(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    rng = np.random.default_rng(config.seed)
    ordered: list[dict[str, Any]] = []
    for stage in range(len(config.stage_bounds) + 1):
        members = sorted((r for r in rows if r["stage"] == stage), key=lambda r: r["problem_id"])
        ordered += [members[i] for i in rng.permutation(len(members))]
    return ordered, []


@STRATEGIES.register(
    "balanced_band", description="posterior mean inside band, closest to 0.5 first, ties by problem_id"
)
def _balanced_band(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    lo, hi = config.band
    inside = [r for r in rows if lo <= r["post_mean"] <= hi]
    outside = [
        (r, f"out_of_band: posterior mean {r['post_mean']:.3f} outside [{lo}, {hi}]")
        for r in rows
        if not lo <= r["post_mean"] <= hi
    ]
    return sorted(inside, key=lambda r: (abs(r["post_mean"] - 0.5), r["problem_id"])), outside


@STRATEGIES.register("skill_balanced", description="smooth round-robin over categories, each easy to hard")
def _skill_balanced(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    groups = _by(rows, "category")
    return _weighted_round_robin(groups, dict.fromkeys(groups, 1.0)), []


@STRATEGIES.register(
    "mixed_sources", description="smooth weighted round-robin over sources by source_mix, each easy to hard"
)
def _mixed_sources(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    total_share = sum(config.source_mix.values())
    shares = {source: share / total_share for source, share in config.source_mix.items() if share > 0}
    groups = _by(rows, "source")
    dropped = [
        (row, f"not_in_mix: source {source!r} has no share in source_mix")
        for source, group in groups.items()
        if source not in shares
        for row in group
    ]
    available = {s: g for s, g in groups.items() if s in shares}
    # the largest curriculum in which every listed source supplies exactly its share (rounded down)
    size = min((len(available.get(s, [])) / share for s, share in shares.items()), default=0.0)
    kept: dict[str, list[dict[str, Any]]] = {}
    for source, group in available.items():
        quota = math.floor(size * shares[source] + 1e-9)
        kept[source] = group[:quota]
        dropped += [(r, f"over_quota: source {source!r} beyond its {shares[source]:.0%} share") for r in group[quota:]]
    return _weighted_round_robin(kept, shares), dropped


@STRATEGIES.register("cures", description="seeded draw without replacement from rho(x) ~ exp(sqrt(p(1-p))/tau)")
def _cures(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    ordered = sorted(rows, key=lambda r: r["problem_id"])
    if not ordered:
        return [], []
    value = np.array([math.sqrt(r["post_mean"] * (1.0 - r["post_mean"])) for r in ordered]) / config.cures_temperature
    rho = np.exp(value - value.max())
    rho /= rho.sum()
    # Efraimidis–Spirakis: sorting by u^(1/w) descending is a weighted draw without replacement
    keys = np.random.default_rng(config.seed).random(len(ordered)) ** (1.0 / rho)
    for row, share in zip(ordered, rho, strict=True):
        row["weight"] = round(float(share * len(ordered)) * row["weight"], 12)
    return [ordered[i] for i in np.argsort(-keys, kind="stable")], []


@STRATEGIES.register(
    "gain_rl", description="GAIN-RL angle concentration of the student's hidden states, highest first (methods §16)"
)
def _gain_rl(rows: list[dict[str, Any]], config: CurriculumConfig) -> Ordered:
    scored = [r for r in rows if r.get("angle_score") is not None]
    reason = "no_angle_signal: no angle score for this problem and model"
    unscored = [(r, reason) for r in rows if r.get("angle_score") is None]
    return sorted(scored, key=lambda r: (-r["angle_score"], r["problem_id"])), unscored


def plan_curriculum(
    problems: pa.Table,
    difficulty: pa.Table,
    *,
    student_id: str,
    config: CurriculumConfig | None = None,
    categories: dict[str, str] | None = None,
    weights: dict[str, float] | None = None,
    signals: dict[str, float] | None = None,
) -> CurriculumPlan:
    """Join the pool with one student's difficulty rows, exclude ungraded and signal-free problems (each with
    its reason), and order the rest by the configured strategy. Every pool problem ends up in exactly one of
    the two tables.

    `categories` maps problem id → category (e.g. its main skill) for `skill_balanced`; problems missing from
    it use their family. `weights` are per-problem sampling weights (STAT-Sel) written to the `weight` column.
    `signals` maps problem id → its angle score (`gain_rl`); it orders, and is not written to the shards.
    """
    config = config or CurriculumConfig()
    categories, weights = categories or {}, weights or {}
    candidates: list[dict[str, Any]] = []
    excluded: list[dict[str, Any]] = []
    for problem in _with_grades(problems, difficulty):
        pid = problem["problem_id"]
        grade = problem if problem["n"] is not None else {"n": 0, "k": 0}
        reason = exclusion_reason(grade["n"], grade["k"])
        if reason and (grade["n"] == 0 or config.strategy not in KEEPS_SIGNAL_FREE):
            excluded.append(_excluded_row(student_id, config, pid, reason, grade))
            continue
        category = categories.get(pid) or problem["family"] or problem["source"]
        candidate = _candidate(problem, grade, config, category, float(weights.get(pid, 1.0)))
        if signals is not None:
            candidate["angle_score"] = signals.get(pid)
        candidates.append(candidate)
    ordered, dropped = STRATEGIES.get(config.strategy)(candidates, config)
    for row in candidates:
        row.pop("angle_score", None)  # an ordering input, not a shard column
    excluded += [_excluded_row(student_id, config, row["problem_id"], reason, row) for row, reason in dropped]
    for position, row in enumerate(ordered):
        row["position"] = position
        row["token_budget"] = config.length_budget.at(position, len(ordered)) if config.length_budget else None
    excluded.sort(key=lambda r: r["problem_id"])
    return CurriculumPlan(_with_texts(to_table(ordered, SHARD), problems), to_table(excluded, CURRICULUM_EXCLUDED))


_PLAN_PROBLEM_COLUMNS = ("problem_id", "source", "family", "difficulty_knob")
_PLAN_GRADE_COLUMNS = ("problem_id", "n", "k", "pass_rate", "post_mean", "post_lo", "post_hi")


def _with_grades(problems: pa.Table, difficulty: pa.Table) -> Iterator[dict[str, Any]]:
    """Each pool problem (in pool order) with its grade's columns (nulls when ungraded), joined in Arrow and read
    a batch at a time: planning never holds the pool's texts or every grade as Python objects."""
    pool = problems.select(_PLAN_PROBLEM_COLUMNS).append_column(
        "_order", pa.array(range(problems.num_rows), pa.int64())
    )
    grades = difficulty.select(_PLAN_GRADE_COLUMNS)
    joined = pool.join(grades, "problem_id", join_type="left outer").sort_by("_order")
    for batch in joined.to_batches(max_chunksize=65_536):
        yield from batch.to_pylist()


def _with_texts(ordered: pa.Table, problems: pa.Table) -> pa.Table:
    """The planned rows with their question and answer taken from the pool (candidates carry no text)."""
    at = pc.index_in(ordered.column("problem_id"), value_set=problems.column("problem_id"))
    for name in ("question", "answer"):
        ordered = ordered.set_column(ordered.schema.get_field_index(name), name, problems.column(name).take(at))
    return ordered


def _excluded_row(
    student_id: str, config: CurriculumConfig, problem_id: str, reason: str, grade: dict[str, Any]
) -> dict[str, Any]:
    return {
        "student_id": student_id,
        "strategy": config.strategy_id,
        "problem_id": problem_id,
        "reason": reason,
        "n": grade["n"],
        "k": grade["k"],
    }


def _candidate(
    problem: dict[str, Any], grade: dict[str, Any], config: CurriculumConfig, category: str, weight: float
) -> dict[str, Any]:
    """A graded problem with a learning signal, as a shard row before its position is known."""
    return {
        "problem_id": problem["problem_id"],
        "source": problem["source"],
        "family": problem["family"],
        "question": None,  # joined back from the pool once the order is planned (`_with_texts`)
        "answer": None,
        "difficulty_knob": problem["difficulty_knob"],
        "n": grade["n"],
        "k": grade["k"],
        "pass_rate": grade["pass_rate"],
        "post_mean": grade["post_mean"],
        "post_lo": grade["post_lo"],
        "post_hi": grade["post_hi"],
        "difficulty": round(1.0 - grade["post_mean"], 12),
        "stage": difficulty_stage(grade["post_mean"], config.stage_bounds),
        "category": category,
        "weight": weight,
    }
