"""Where synthesis methods write: `synthesis_log` (every candidate and every filter decision, kept or not) and
`synthesized_problems` (the accepted problems, which `problems` unions into the pool).

Both are partitioned by method and round (`synth=<method>/synth_round=<r>`) and each partition is rewritten
whole by its run, so a rerun replaces rather than duplicates, and one Socratic round never touches another.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from scoring.schemas import SYNTHESIZED_PROBLEMS, to_table
from scoring.storage import DataRoot
from scoring.synthesis_schemas import SYNTHESIS_LOG
from synthesis.problem import Problem

MAX_LOGGED_TEXT = 2_000


def synth_partition(method: str, round_no: int = 0) -> dict[str, str]:
    return {"synth": method, "synth_round": str(round_no)}


@dataclass(slots=True)
class SynthesisRecord:
    """The log rows and accepted problems of one method's run (one round)."""

    method: str
    round_no: int = 0
    log: list[dict[str, object]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def decide(
        self,
        stage: str,
        item_id: str,
        *,
        kept: bool,
        reason: str = "",
        text: str = "",
        parent_id: str | None = None,
        model: str | None = None,
        prompt_version: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Record one decision of one stage/filter on one candidate."""
        self.log.append(
            {
                "method": self.method,
                "round": self.round_no,
                "stage": stage,
                "item_id": item_id,
                "parent_id": parent_id,
                "kept": kept,
                "reason": reason,
                "text": text[:MAX_LOGGED_TEXT],
                "model": model,
                "prompt_version": prompt_version,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "detail": json.dumps(detail or {}, sort_keys=True, default=str),
            }
        )

    def accept(self, problem: Problem) -> None:
        self.problems.append(problem)

    def funnel(self) -> dict[str, dict[str, int]]:
        """Per stage, in first-seen order: candidates in, kept, rejected."""
        stages: dict[str, dict[str, int]] = {}
        for row in self.log:
            counts = stages.setdefault(str(row["stage"]), {"in": 0, "kept": 0, "rejected": 0})
            counts["in"] += 1
            counts["kept" if row["kept"] else "rejected"] += 1
        return stages

    def reject_reasons(self) -> Counter[str]:
        return Counter(f"{row['stage']}: {row['reason']}" for row in self.log if not row["kept"])

    def tokens(self) -> int:
        return sum(int(r["prompt_tokens"] or 0) + int(r["completion_tokens"] or 0) for r in self.log)

    def write(self, root: DataRoot) -> tuple[pa.Table, pa.Table]:
        """Replace this method/round's partitions of both tables; returns (log, problems)."""
        part = synth_partition(self.method, self.round_no)
        log = to_table(self.log, SYNTHESIS_LOG)
        unique: dict[str, Problem] = {}
        for problem in self.problems:
            unique.setdefault(problem.problem_id, problem)
        rows = [asdict(p) | {"method": self.method, "round": self.round_no} for p in unique.values()]
        problems = to_table(rows, SYNTHESIZED_PROBLEMS)
        root.write_table("synthesis_log", log, part)
        root.write_table("synthesized_problems", problems, part)
        return log, problems
