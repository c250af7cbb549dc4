"""How the pool is graded on the student: a fixed K, or adaptive K with an optional pass-rate predictor.

`grade_adaptively` runs `scoring.grading.adaptive.run_sequential` with the engine as the source of rollouts. Each
round's rollouts are stored before the next round starts, and a rerun starts from the stored evidence, so a
killed run resumes where it stopped; the completion cache covers a round that was cut off mid-way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import duckdb
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from engines import Engine
from scoring.grading.adaptive import (
    AdaptiveConfig,
    BandsConfig,
    Outcome,
    ProblemState,
    SequentialResult,
    run_sequential,
)
from scoring.grading.band_filters import FilterConfig
from scoring.grading.rollouts import RolloutConfig, RolloutResult, run_rollouts
from scoring.grading.verify import Verifier
from synthesis.problem import Problem

EVIDENCE_FREE = frozenset({"timeout", "error"})  # verdicts that say nothing about the student


class PredictorConfig(BaseModel):
    """Use the student's pass-rate predictor (trained on its earlier grades, methods §6) in adaptive grading."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    prior: bool = Field(True, description="use each problem's predicted Beta as its prior")
    screen: bool = Field(
        False, description="skip rollouts for problems the predictor puts confidently outside the learnable band"
    )
    min_training_problems: int = Field(30, ge=10, description="graded problems needed before a predictor is fit")


# Written to `band_filter` for every grade unless the config says otherwise (in this order).
DEFAULT_FILTERS = ("odf_band", "dapo_nonzero", "skywork_1_to_k_minus_1")


class GradingConfig(BaseModel):
    """`mode: fixed` draws `rollouts.k` per problem; `mode: adaptive` draws rounds until each band is certain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["fixed", "adaptive"] = "fixed"
    bands: BandsConfig = Field(default_factory=BandsConfig)
    adaptive: AdaptiveConfig = Field(default_factory=AdaptiveConfig)
    predictor: PredictorConfig = Field(default_factory=PredictorConfig)
    filters: list[FilterConfig] = Field(
        default_factory=lambda: [FilterConfig(name=name) for name in DEFAULT_FILTERS],
        description="band filters whose decisions are written to `band_filter` (all three by default)",
    )


# Draws one round: (problems, (first, count) sample range per problem) -> their verified rollouts.
RoundRunner = Callable[[Sequence[Problem], Sequence[tuple[int, int]]], RolloutResult]


@dataclass(frozen=True, slots=True)
class AdaptiveRun:
    sequential: SequentialResult
    rounds: list[RolloutResult]


def stored_states(rollouts: pa.Table) -> dict[str, ProblemState]:
    """Evidence per problem from stored rollouts of one (student, revision, sampling config), or from their
    per-problem counts (`state_counts_sql`'s columns: problem_id, drawn, n, k)."""
    if "drawn" not in rollouts.column_names:
        rollouts = _state_counts(rollouts)
    return {
        pid: ProblemState(pid, n=n, k=k, drawn=drawn)
        for pid, drawn, n, k in zip(
            *(rollouts.column(c).to_pylist() for c in ("problem_id", "drawn", "n", "k")), strict=True
        )
    }


def state_counts_sql(relation: str, revision: str | None = None, sampling: str | None = None) -> str:
    """DuckDB SQL counting evidence per problem over `relation` (rollouts with problem_id, student_revision,
    sampling_hash, sample_index, verdict), only one revision's and sampling config's when given: sample indices
    used, n and k. An aggregate, so DuckDB reads the stored files out of core."""
    free = ", ".join(f"'{v}'" for v in sorted(EVIDENCE_FREE))
    where = [
        f"{column} = '{value.replace(chr(39), chr(39) * 2)}'"
        for column, value in (("student_revision", revision), ("sampling_hash", sampling))
        if value is not None
    ]
    return f"""
        select problem_id, (max(sample_index) + 1)::integer as drawn,
            count(*) filter (where verdict not in ({free}))::integer as n,
            count(*) filter (where verdict = 'correct')::integer as k
        from {relation}
        {"where " + " and ".join(where) if where else ""}
        group by problem_id order by problem_id
    """


def _state_counts(rollouts: pa.Table) -> pa.Table:
    con = duckdb.connect()
    try:
        con.register("evidence", rollouts)
        return con.sql(state_counts_sql("evidence")).to_arrow_table()
    finally:
        con.close()


def grade_adaptively(
    problems: Sequence[Problem],
    engine: Engine,
    *,
    student_id: str,
    rollouts: RolloutConfig,
    grading: GradingConfig,
    verifier: Verifier,
    store_round: Callable[[RolloutResult], None],
    stored: Mapping[str, ProblemState] | None = None,
    priors: Mapping[str, tuple[float, float]] | None = None,
    progress: bool = True,
    draw_rollouts: RoundRunner | None = None,
) -> AdaptiveRun:
    """Sequential rollouts over `problems`; `store_round` persists each round before the next is drawn.

    `draw_rollouts(problems, sample_ranges)` draws one round; by default `run_rollouts` on `engine` in this
    process (the Ray path passes `run_rollouts_on_ray`, so each round is spread over the workers)."""
    by_id = {p.problem_id: p for p in problems}
    rounds: list[RolloutResult] = []

    def local_round(batch: Sequence[Problem], ranges: Sequence[tuple[int, int]]) -> RolloutResult:
        return run_rollouts(
            batch,
            engine,
            student_id=student_id,
            config=rollouts,
            verifier=verifier,
            progress=progress,
            sample_ranges=ranges,
        )

    runner = draw_rollouts or local_round

    def draw(plan: Mapping[str, tuple[int, int]]) -> dict[str, list[Outcome]]:
        ids = sorted(plan)
        result = runner([by_id[pid] for pid in ids], [plan[pid] for pid in ids])
        store_round(result)
        rounds.append(result)
        outcomes: dict[str, list[Outcome]] = {pid: [] for pid in ids}
        for row in sorted(result.rollouts.to_pylist(), key=lambda r: (r["problem_id"], r["sample_index"])):
            verdict = row["verdict"]
            outcomes[row["problem_id"]].append(None if verdict in EVIDENCE_FREE else verdict == "correct")
        return outcomes

    sequential = run_sequential(list(by_id), draw, grading.adaptive, bands=grading.bands, priors=priors, initial=stored)
    return AdaptiveRun(sequential, rounds)
