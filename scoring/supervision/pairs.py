"""Preference pairs for DPO-style training, by two registered pairing rules (`method` = `<name>_<version>`):

- `verified_pairs` (kind `student_vs_student`): for each problem with at least one student rollout the Verifier
  judged `correct` and one it judged `wrong` (or, when configured, `unparseable`), chosen = a correct sample,
  rejected = a failed one.
- `teacher_student_pairs` (kind `teacher_vs_student`): chosen = a teacher trace (`supervision_traces`, any role but
  the student, from a model other than the student's revision) whose final answer verifies correct, rejected = a
  student rollout of the same problem that failed. The teacher's text is the better answer to the same question;
  the DPO export pairs both under the student's prompt, the one the student is trained to answer.

Every (chosen, rejected) combination of a problem is a candidate; at most `max_pairs_per_problem` per rule are kept,
drawn with a seed derived from the rule and the problem id, so the same inputs always give the same pairs. A pair
never joins a sample with itself: the two sides always have different verdicts, and a teacher trace written by the
student's own model revision is never a chosen side. `timeout` and `error` say nothing about the answer
(design.md, Verdicts) and are never paired.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from scoring.schemas import PREFERENCE_PAIRS, to_table
from synthesis.registry import Registry

MAX_REASON_CHARS = 300
STUDENT_ROLE = "student"
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PairInputs:
    """What the pairing rules read: one student revision's verified rollouts (ROLLOUTS columns), its difficulty
    rows by problem id (problems without one are skipped: their difficulty would be unknown), and the traces
    (SUPERVISION_TRACES columns; empty when none were collected)."""

    rollouts: pa.Table
    grades: Mapping[str, Mapping[str, Any]]
    traces: pa.Table | None = None


# Pairing rules by name; `<name>_<version>` is the `method` of every pair row. Bump it when pairs could change.
PAIRING: Registry[Callable[[PairInputs, PairsConfig, str], list[Row]]] = Registry("pairing rule")


class PairsConfig(BaseModel):
    """Preference pairs: which rules, how many per problem, which failures may be rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="write preference pairs (and their DPO exports)")
    rules: tuple[str, ...] = Field(
        ("verified_pairs", "teacher_student_pairs"),
        min_length=1,
        description="registered pairing rules (`PAIRING`), each exported on its own",
    )
    max_pairs_per_problem: int = Field(4, ge=1, le=1024, description="per problem and rule")
    rejected_verdicts: tuple[Literal["wrong", "unparseable"], ...] = Field(
        ("wrong",), min_length=1, description="verdicts a rejected sample may have (unparseable: no final answer)"
    )
    seed: int = 0

    @field_validator("rules")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            PAIRING.check(name)
        if len(set(names)) != len(names):
            raise ValueError(f"pairing rules are listed twice: {names}")
        return names


def pair_table(rule: str, inputs: PairInputs, config: PairsConfig, *, student_id: str) -> pa.Table:
    """`preference_pairs` rows of one registered rule, ordered by problem, chosen and rejected side."""
    return to_table(PAIRING.get(rule)(inputs, config, student_id), PREFERENCE_PAIRS)


def preference_pairs(
    rollouts: pa.Table, grades: Mapping[str, Mapping[str, Any]], config: PairsConfig, *, student_id: str
) -> pa.Table:
    """The `verified_pairs` rows of the student's own rollouts."""
    return pair_table("verified_pairs", PairInputs(rollouts, grades), config, student_id=student_id)


def _by_problem(table: pa.Table | None) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in table.to_pylist() if table is not None else ():
        out.setdefault(row["problem_id"], []).append(row)
    return out


def _capped(candidates: list[tuple[Row, Row]], config: PairsConfig, method: str, problem_id: str) -> list:
    """At most `max_pairs_per_problem` candidates, drawn with a seed of the rule, config seed and problem."""
    if len(candidates) <= config.max_pairs_per_problem:
        return candidates
    digest = hashlib.sha256(f"{method}:{config.seed}:{problem_id}".encode()).digest()
    picked = random.Random(int.from_bytes(digest[:8], "big")).sample(
        range(len(candidates)), config.max_pairs_per_problem
    )
    return [candidates[i] for i in sorted(picked)]


@PAIRING.register("verified_pairs", description="chosen: a correct student sample; rejected: a failed one")
def _verified_pairs(inputs: PairInputs, config: PairsConfig, student_id: str) -> list[Row]:
    method = PAIRING.method("verified_pairs")
    by_problem, out = _by_problem(inputs.rollouts), []
    for problem_id in sorted(by_problem):
        grade = inputs.grades.get(problem_id)
        if grade is None:
            continue
        samples = sorted(by_problem[problem_id], key=lambda r: r["sample_index"])
        correct = [r for r in samples if r["verdict"] == "correct"]
        failed = [r for r in samples if r["verdict"] in config.rejected_verdicts]
        candidates = [(c, f) for c, f in product(correct, failed) if c["sample_index"] != f["sample_index"]]
        for chosen, rejected in _capped(candidates, config, method, problem_id):
            reason = (
                f"chosen: sample {chosen['sample_index']} correct ({chosen['verdict_reason']}); "
                f"rejected: sample {rejected['sample_index']} {rejected['verdict']} ({rejected['verdict_reason']})"
            )
            side = {"role": STUDENT_ROLE, "revision": chosen["student_revision"]}
            out.append(_pair_row(method, "student_vs_student", chosen, side, rejected, grade, student_id, reason))
    return out


@PAIRING.register("teacher_student_pairs", description="chosen: a correct teacher trace; rejected: a failed student")
def _teacher_student_pairs(inputs: PairInputs, config: PairsConfig, student_id: str) -> list[Row]:
    method = PAIRING.method("teacher_student_pairs")
    rollouts, traces, out = _by_problem(inputs.rollouts), _by_problem(inputs.traces), []
    for problem_id in sorted(set(rollouts) & set(traces)):
        grade = inputs.grades.get(problem_id)
        if grade is None:
            continue
        failed = sorted(
            (r for r in rollouts[problem_id] if r["verdict"] in config.rejected_verdicts),
            key=lambda r: r["sample_index"],
        )
        student_revisions = {r["student_revision"] for r in rollouts[problem_id]}
        correct = sorted(
            (
                t
                for t in traces[problem_id]
                if t["verdict"] == "correct"
                and t["role"] != STUDENT_ROLE
                and t["model_revision"] not in student_revisions  # the student's own model is no teacher
            ),
            key=lambda t: (t["role"], t["model_id"], t["sample_index"]),
        )
        for chosen, rejected in _capped(list(product(correct, failed)), config, method, problem_id):
            reason = (
                f"chosen: {chosen['role']} trace {chosen['sample_index']} of {chosen['model_id']} correct "
                f"({chosen['verdict_reason']}); rejected: student sample {rejected['sample_index']} "
                f"{rejected['verdict']} ({rejected['verdict_reason']})"
            )
            side = {"role": chosen["role"], "revision": chosen["model_revision"]}
            out.append(_pair_row(method, "teacher_vs_student", chosen, side, rejected, grade, student_id, reason))
    return out


def _pair_row(
    method: str,
    kind: str,
    chosen: Mapping[str, Any],
    chosen_side: Mapping[str, str],
    rejected: Mapping[str, Any],
    grade: Mapping[str, Any],
    student_id: str,
    reason: str,
) -> Row:
    return {
        "problem_id": rejected["problem_id"],
        "student_id": student_id,
        "sampling_hash": rejected["sampling_hash"],
        "verifier_version": rejected["verifier_version"],
        "method": method,
        "kind": kind,
        "chosen_role": chosen_side["role"],
        "chosen_revision": chosen_side["revision"],
        "chosen_index": chosen["sample_index"],
        "rejected_index": rejected["sample_index"],
        "chosen": chosen["completion"],
        "rejected": rejected["completion"],
        "chosen_verdict": chosen["verdict"],
        "rejected_verdict": rejected["verdict"],
        "reason": reason[:MAX_REASON_CHARS],
        "student_revision": rejected["student_revision"],
        **{name: grade[name] for name in ("n", "k", "pass_rate", "post_mean")},
    }


PAIR_METHOD = PAIRING.method("verified_pairs")
