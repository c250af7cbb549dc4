"""Curriculum: order graded problems easy→hard and publish them as Parquet shards with a manifest, and read
them back in order (the trainer stage's input).

Strategy `easy_to_hard_v1`: problems every rollout solved (k = n) or none did (k = 0) carry no GRPO signal
(`../shared/methods.md` §1.3, §15.4, Skywork-OR1's 0 < k < n rule) and are written to `curriculum_excluded`
with the reason; the rest are sorted by Beta posterior mean, highest (easiest) first, ties by problem id.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from engines.errors import IntegrityError
from scoring.schemas import CURRICULUM, CURRICULUM_EXCLUDED, SHARD, to_table
from scoring.storage import safe_name, write_parquet_atomic, write_text_atomic

STRATEGY = "easy_to_hard_v1"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


class CurriculumConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    shard_size: int = Field(16, ge=1, description="problems per shard")


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


def plan_curriculum(problems: pa.Table, difficulty: pa.Table, *, student_id: str) -> CurriculumPlan:
    """Join the pool with one student's difficulty rows; exclude ungraded and signal-free problems (each with
    its reason), order the rest easy→hard. Every pool problem ends up in exactly one of the two tables."""
    grades = {row["problem_id"]: row for row in difficulty.to_pylist()}
    kept, excluded = [], []
    for problem in problems.to_pylist():
        grade = grades.get(problem["problem_id"]) or {"n": 0, "k": 0}
        reason = exclusion_reason(grade["n"], grade["k"])
        if reason:
            excluded.append(
                {
                    "student_id": student_id,
                    "strategy": STRATEGY,
                    "problem_id": problem["problem_id"],
                    "reason": reason,
                    "n": grade["n"],
                    "k": grade["k"],
                }
            )
            continue
        kept.append(
            {
                "problem_id": problem["problem_id"],
                "source": problem["source"],
                "family": problem["family"],
                "question": problem["question"],
                "answer": problem["answer"],
                "difficulty_knob": problem["difficulty_knob"],
                "n": grade["n"],
                "k": grade["k"],
                "pass_rate": grade["pass_rate"],
                "post_mean": grade["post_mean"],
                "post_lo": grade["post_lo"],
                "post_hi": grade["post_hi"],
                "difficulty": round(1.0 - grade["post_mean"], 12),
            }
        )
    kept.sort(key=lambda r: (-r["post_mean"], r["problem_id"]))
    for position, row in enumerate(kept):
        row["position"] = position
    excluded.sort(key=lambda r: r["problem_id"])
    return CurriculumPlan(to_table(kept, SHARD), to_table(excluded, CURRICULUM_EXCLUDED))


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_shards(
    plan: CurriculumPlan,
    out_dir: Path,
    *,
    config: CurriculumConfig,
    student_id: str,
    provenance: dict[str, str],
) -> tuple[dict[str, object], pa.Table]:
    """Write `shard-00000.parquet`, … and then `manifest.json` (the commit point); remove stale shards.

    Returns the manifest and the `curriculum` table rows. Output depends only on the inputs, so a rerun
    writes byte-identical files.
    """
    safe_name(student_id, "student_id")
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = plan.ordered
    shards, curriculum_rows = [], []
    for index, start in enumerate(range(0, ordered.num_rows, config.shard_size)):
        chunk = ordered.slice(start, config.shard_size)
        name = f"shard-{index:05d}.parquet"
        path = write_parquet_atomic(chunk, out_dir / name)
        difficulties = chunk.column("difficulty").to_pylist()
        shards.append(
            {
                "file": name,
                "rows": chunk.num_rows,
                "sha256": _sha256_file(path),
                "first_position": start,
                "difficulty_min": min(difficulties),
                "difficulty_max": max(difficulties),
            }
        )
        curriculum_rows += [
            {
                "student_id": student_id,
                "strategy": STRATEGY,
                "position": pos,
                "problem_id": pid,
                "shard": name,
                "post_mean": pm,
            }
            for pos, pid, pm in zip(
                chunk.column("position").to_pylist(),
                chunk.column("problem_id").to_pylist(),
                chunk.column("post_mean").to_pylist(),
                strict=True,
            )
        ]
    excluded_counts: dict[str, int] = {}
    for reason in plan.excluded.column("reason").to_pylist():
        label = reason.split(":", 1)[0]
        excluded_counts[label] = excluded_counts.get(label, 0) + 1
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "strategy": STRATEGY,
        "order": "post_mean descending (easy to hard), ties by problem_id",
        "student_id": student_id,
        "provenance": provenance,
        "config": config.model_dump(),
        "counts": {"kept": ordered.num_rows, "excluded": dict(sorted(excluded_counts.items()))},
        "shards": shards,
    }
    write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", out_dir / MANIFEST)
    live = {s["file"] for s in shards}
    for stale in out_dir.glob("shard-*.parquet"):
        if stale.name not in live:
            stale.unlink()
    return manifest, to_table(curriculum_rows, CURRICULUM)


class CurriculumReader:
    """Yields the curriculum in order, batch by batch, checking each shard against the manifest's sha256."""

    def __init__(self, shard_dir: Path) -> None:
        self.shard_dir = Path(shard_dir)
        manifest_path = self.shard_dir / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no {MANIFEST} in {self.shard_dir}: run the curriculum stage first")
        self.manifest = json.loads(manifest_path.read_text())

    def __len__(self) -> int:
        return int(self.manifest["counts"]["kept"])

    def rows(self) -> Iterator[dict[str, object]]:
        for shard in self.manifest["shards"]:
            path = self.shard_dir / shard["file"]
            if _sha256_file(path) != shard["sha256"]:
                raise IntegrityError(f"{path} does not match the sha256 in {MANIFEST}; regenerate the shards")
            yield from pq.read_table(path, schema=SHARD).to_pylist()

    def batches(self, batch_size: int) -> Iterator[list[dict[str, object]]]:
        """Batches of `batch_size` problems in curriculum order (the last one may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        batch: list[dict[str, object]] = []
        for row in self.rows():
            batch.append(row)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
