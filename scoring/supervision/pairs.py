"""Preference pairs from the student's own verified rollouts (for DPO-style training).

For each problem with at least one sample the Verifier judged `correct` and one it judged `wrong` (or, when
configured, `unparseable`), every (correct, failed) combination is a candidate pair; at most
`max_pairs_per_problem` are kept, drawn with a seed derived from the problem id, so the same rollouts always give
the same pairs. A pair always joins two different samples with different verdicts: never a sample with itself.
`timeout` and `error` say nothing about the student (design.md, Verdicts) and are never paired.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from itertools import product
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from scoring.schemas import PREFERENCE_PAIRS, to_table
from synthesis.registry import Registry

# Pairing rules by name; `<name>_<version>` is the `method` of every pair row. Bump it when pairs could change.
PAIRING: Registry[Callable[..., pa.Table]] = Registry("pairing rule")
MAX_REASON_CHARS = 300


class PairsConfig(BaseModel):
    """Preference pairs from the student's rollouts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="write preference pairs (and their DPO exports)")
    max_pairs_per_problem: int = Field(4, ge=1, le=1024)
    rejected_verdicts: tuple[Literal["wrong", "unparseable"], ...] = Field(
        ("wrong",), min_length=1, description="verdicts a rejected sample may have (unparseable: no final answer)"
    )
    seed: int = 0


def _problem_rng(seed: int, problem_id: str) -> random.Random:
    digest = hashlib.sha256(f"{PAIR_METHOD}:{seed}:{problem_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@PAIRING.register("verified_pairs", description="chosen: a correct sample; rejected: a failed one; same problem")
def preference_pairs(
    rollouts: pa.Table, grades: Mapping[str, Mapping[str, Any]], config: PairsConfig, *, student_id: str
) -> pa.Table:
    """`preference_pairs` rows from one student revision's rollouts (ROLLOUTS columns) and its difficulty rows by
    problem id; problems without a grade are skipped (their difficulty would be unknown)."""
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for row in rollouts.to_pylist():
        by_problem.setdefault(row["problem_id"], []).append(row)
    out: list[dict[str, Any]] = []
    for problem_id in sorted(by_problem):
        grade = grades.get(problem_id)
        if grade is None:
            continue
        samples = sorted(by_problem[problem_id], key=lambda r: r["sample_index"])
        correct = [r for r in samples if r["verdict"] == "correct"]
        failed = [r for r in samples if r["verdict"] in config.rejected_verdicts]
        candidates = [(c, f) for c, f in product(correct, failed) if c["sample_index"] != f["sample_index"]]
        if len(candidates) > config.max_pairs_per_problem:
            picked = _problem_rng(config.seed, problem_id).sample(range(len(candidates)), config.max_pairs_per_problem)
            candidates = [candidates[i] for i in sorted(picked)]
        out += [_pair_row(chosen, rejected, grade, student_id) for chosen, rejected in candidates]
    return to_table(out, PREFERENCE_PAIRS)


PAIR_METHOD = PAIRING.method("verified_pairs")


def _pair_row(
    chosen: Mapping[str, Any], rejected: Mapping[str, Any], grade: Mapping[str, Any], student_id: str
) -> dict[str, Any]:
    reason = (
        f"chosen: sample {chosen['sample_index']} correct ({chosen['verdict_reason']}); "
        f"rejected: sample {rejected['sample_index']} {rejected['verdict']} ({rejected['verdict_reason']})"
    )
    return {
        "problem_id": chosen["problem_id"],
        "student_id": student_id,
        "sampling_hash": chosen["sampling_hash"],
        "verifier_version": chosen["verifier_version"],
        "method": PAIR_METHOD,
        "chosen_index": chosen["sample_index"],
        "rejected_index": rejected["sample_index"],
        "chosen": chosen["completion"],
        "rejected": rejected["completion"],
        "chosen_verdict": chosen["verdict"],
        "rejected_verdict": rejected["verdict"],
        "reason": reason[:MAX_REASON_CHARS],
        "student_revision": chosen["student_revision"],
        **{name: grade[name] for name in ("n", "k", "pass_rate", "post_mean")},
    }
