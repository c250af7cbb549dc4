"""Selection policies: which stored traces become SFT data, in what order (methods §14). Each is registered and
versioned (`hard_first_v1`); the versioned name is the `policy` column of `supervision_selection`.

- `hard_first`: traces of problems the student fails (pass rate below `hard_below`), hardest first, kept whether
  the teacher's final answer is right or wrong (Guiding Through Complexity: hard supervision with errors beats easy
  correct supervision; W2SR: incorrect traces still help) — the verdict stays in the row for ablations.
- `low_step_error_first`: traces by their step-wise error rate, lowest first (the paper's finding 3: the step-wise
  error rate matters more than the outcome); traces with no checked step are dropped (`require_checked`): no
  arithmetic claim for `arith_steps_v1`, a failed judgement for `teacher_steps_v1`.
- `correct_only`: traces whose final answer verifies correct, hardest first (the usual rejection-sampling filter,
  the baseline the papers compare against).
- `weak_to_strong`: traces whose final answer agrees with the answer most independent teacher samples reached
  (at least `min_agree` of them, a strict plurality), hardest first — a consistency filter that needs no gold
  answer (W2SR). With one engine configured the "independent teachers" are its independently seeded samples.

Every policy then keeps at most `max_per_problem` traces of a problem and, with `max_traces`, the first that many,
so two policies can be compared on sets of equal size. Every trace gets exactly one row: kept with its position,
or dropped with the reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from scoring.schemas import SUPERVISION_SELECTION, to_table
from synthesis.registry import Registry

Row = dict[str, Any]
Selected = tuple[list[Row], list[tuple[Row, str]]]
POLICIES: Registry[Callable[[list[Row], SelectionConfig], Selected]] = Registry("supervision policy")


class SelectionConfig(BaseModel):
    """Which policies select SFT traces, and their knobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policies: tuple[str, ...] = Field(
        ("hard_first", "low_step_error_first", "correct_only", "weak_to_strong"),
        min_length=1,
        description="registered selection policies (`POLICIES`), each exported on its own",
    )
    hard_below: float = Field(0.5, gt=0.0, le=1.0, description="hard_first: student pass rate below this = fails")
    max_step_error_rate: float = Field(1.0, ge=0.0, le=1.0, description="low_step_error_first: drop traces above")
    require_checked: bool = Field(True, description="low_step_error_first: drop traces with no checkable claim")
    min_agree: int = Field(2, ge=2, description="weak_to_strong: samples that must reach the agreed answer")
    max_per_problem: int = Field(1, ge=1, description="traces kept per problem (the policy's first ones)")
    max_traces: int | None = Field(None, ge=1, description="keep only the first N selected traces (equal-size sets)")

    @field_validator("policies")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            POLICIES.check(name)
        if len(set(names)) != len(names):
            raise ValueError(f"policies are listed twice: {names}")
        return names


def _hardest_first(row: Row) -> tuple[Any, ...]:
    return (row["post_mean"], row["problem_id"], row["role"], row["sample_index"])


@POLICIES.register("hard_first", description="problems the student fails, hardest first, wrong traces kept")
def _hard_first(rows: list[Row], config: SelectionConfig) -> Selected:
    kept = [r for r in rows if r["pass_rate"] < config.hard_below]
    dropped = [
        (r, f"student passes {r['k']}/{r['n']} (pass rate {r['pass_rate']:.2f} >= hard_below {config.hard_below})")
        for r in rows
        if r["pass_rate"] >= config.hard_below
    ]
    return sorted(kept, key=_hardest_first), dropped


@POLICIES.register("low_step_error_first", description="step-wise error rate ascending, then hardest first")
def _low_step_error_first(rows: list[Row], config: SelectionConfig) -> Selected:
    kept, dropped = [], []
    for row in rows:
        rate = row["step_error_rate"]
        if config.require_checked and not row["n_checked_steps"]:
            dropped.append((row, f"no step the checker could check ({row['step_method']})"))
        elif rate is None:
            dropped.append((row, "no steps"))
        elif rate > config.max_step_error_rate:
            dropped.append((row, f"step error rate {rate:.2f} > max_step_error_rate {config.max_step_error_rate}"))
        else:
            kept.append(row)
    return sorted(kept, key=lambda r: (r["step_error_rate"], *_hardest_first(r))), dropped


@POLICIES.register("correct_only", description="final answer verifies correct, hardest first")
def _correct_only(rows: list[Row], config: SelectionConfig) -> Selected:
    kept = [r for r in rows if r["verdict"] == "correct"]
    dropped = [(r, f"final answer {r['verdict']}: {r['verdict_reason']}") for r in rows if r["verdict"] != "correct"]
    return sorted(kept, key=_hardest_first), dropped


def agreed_answer(keys: list[str | None], min_agree: int) -> str | None:
    """The answer at least `min_agree` samples reached and no other answer reached as often; None otherwise."""
    counts = Counter(k for k in keys if k is not None).most_common()
    if not counts or counts[0][1] < min_agree or (len(counts) > 1 and counts[1][1] == counts[0][1]):
        return None
    return counts[0][0]


@POLICIES.register("weak_to_strong", description="answer agreed by >= min_agree independent teacher samples")
def _weak_to_strong(rows: list[Row], config: SelectionConfig) -> Selected:
    by_problem: dict[str, list[Row]] = {}
    for row in rows:
        by_problem.setdefault(row["problem_id"], []).append(row)
    kept, dropped = [], []
    for group in by_problem.values():
        agreed = agreed_answer([r["answer_key"] for r in group], config.min_agree)
        for row in group:
            if agreed is None:
                answers = Counter(str(r["answer_key"]) for r in group)
                dropped.append((row, f"no answer reached by >= {config.min_agree} samples alone: {dict(answers)}"))
            elif row["answer_key"] != agreed:
                dropped.append((row, f"answer {row['answer_key']!r} is not the agreed {agreed!r}"))
            else:
                kept.append(row)
    return sorted(kept, key=_hardest_first), dropped


def select_traces(traces: pa.Table, policy: str, config: SelectionConfig, *, student_id: str) -> pa.Table:
    """One `supervision_selection` row per trace for `policy`: kept ones numbered by position, dropped ones with
    the reason. Pure: the same traces and config give the same table."""
    rows = sorted(traces.to_pylist(), key=lambda r: (r["problem_id"], r["role"], r["sample_index"]))
    ordered, dropped = POLICIES.get(policy)(rows, config)
    per_problem: Counter[str] = Counter()
    kept: list[Row] = []
    for row in ordered:
        per_problem[row["problem_id"]] += 1
        if per_problem[row["problem_id"]] > config.max_per_problem:
            dropped.append((row, f"beyond max_per_problem = {config.max_per_problem}"))
        elif config.max_traces is not None and len(kept) >= config.max_traces:
            dropped.append((row, f"beyond max_traces = {config.max_traces}"))
        else:
            kept.append(row)
    method = POLICIES.method(policy)
    out = [_selection_row(row, method, student_id, position, "") for position, row in enumerate(kept)]
    dropped.sort(key=lambda pair: (pair[0]["problem_id"], pair[0]["role"], pair[0]["sample_index"]))
    out += [_selection_row(row, method, student_id, None, reason) for row, reason in dropped]
    return to_table(out, SUPERVISION_SELECTION)


def _selection_row(row: Row, policy: str, student_id: str, position: int | None, reason: str) -> Row:
    return {
        "student_id": student_id,
        "policy": policy,
        "position": position,
        "kept": position is not None,
        "reason": reason,
        **{name: row[name] for name in SELECTION_TRACE_COLUMNS},
    }


# Trace columns repeated in a selection row: its key, and what a reader filters a selection by.
SELECTION_TRACE_COLUMNS = (
    "problem_id", "role", "model_id", "sample_index", "verdict", "step_error_rate", "pass_rate", "post_mean",
)  # fmt: skip
