"""Curriculum shards: write a plan as `shard-00000.parquet`, … with a `manifest.json` (the commit point), and read
them back in order, checked against the manifest (the trainer stage's input). The order itself comes from
`strategies.py`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engines.errors import IntegrityError
from scoring.curriculum.strategies import STRATEGIES, CurriculumConfig, CurriculumPlan
from scoring.schemas import CURRICULUM, SHARD, to_table
from scoring.storage import safe_name, write_parquet_atomic, write_text_atomic

MANIFEST = "manifest.json"
MANIFEST_VERSION = 2
HISTOGRAM_BINS = 10


def difficulty_histogram(values: list[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts of `values` (in [0, 1]) in `bins` equal bins; 1.0 falls in the last."""
    counts = [0] * bins
    for value in values:
        counts[min(int(value * bins), bins - 1)] += 1
    return counts


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
        shard = _write_shard(chunk, out_dir / f"shard-{index:05d}.parquet", start)
        shards.append(shard)
        curriculum_rows += _curriculum_rows(chunk, shard["file"], student_id, config.strategy_id)
    manifest = _manifest(plan, config, student_id, provenance, shards)
    write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", out_dir / MANIFEST)
    live = {s["file"] for s in shards}
    for stale in out_dir.glob("shard-*.parquet"):
        if stale.name not in live:
            stale.unlink()
    return manifest, to_table(curriculum_rows, CURRICULUM)


def _write_shard(chunk: pa.Table, path: Path, start: int) -> dict[str, Any]:
    """Publish one shard and return its manifest entry (file, rows, sha256, positions, difficulty summary)."""
    write_parquet_atomic(chunk, path)
    difficulties = chunk.column("difficulty").to_pylist()
    return {
        "file": path.name,
        "rows": chunk.num_rows,
        "sha256": _sha256_file(path),
        "first_position": start,
        "difficulty_min": min(difficulties),
        "difficulty_max": max(difficulties),
        "difficulty_histogram": difficulty_histogram(difficulties),
        "stages": sorted(set(chunk.column("stage").to_pylist())),
    }


def _curriculum_rows(chunk: pa.Table, shard: str, student_id: str, strategy_id: str) -> list[dict[str, object]]:
    """The `curriculum` table rows of one shard: where each problem sits, and in which file."""
    return [
        {
            "student_id": student_id,
            "strategy": strategy_id,
            "position": pos,
            "problem_id": pid,
            "shard": shard,
            "post_mean": pm,
        }
        for pos, pid, pm in zip(
            chunk.column("position").to_pylist(),
            chunk.column("problem_id").to_pylist(),
            chunk.column("post_mean").to_pylist(),
            strict=True,
        )
    ]


def _manifest(
    plan: CurriculumPlan,
    config: CurriculumConfig,
    student_id: str,
    provenance: dict[str, str],
    shards: list[dict[str, Any]],
) -> dict[str, object]:
    """The manifest: strategy, provenance, config, kept/excluded/per-stage counts and the shard entries."""
    excluded_counts: dict[str, int] = {}
    for reason in plan.excluded.column("reason").to_pylist():
        label = reason.split(":", 1)[0]
        excluded_counts[label] = excluded_counts.get(label, 0) + 1
    per_stage: dict[str, int] = {}
    for stage in plan.ordered.column("stage").to_pylist():
        per_stage[str(stage)] = per_stage.get(str(stage), 0) + 1
    return {
        "manifest_version": MANIFEST_VERSION,
        "strategy": config.strategy_id,
        "order": STRATEGIES.entry(config.strategy).description,
        "student_id": student_id,
        "provenance": provenance,
        "config": config.model_dump(mode="json"),
        "counts": {
            "kept": plan.ordered.num_rows,
            "excluded": dict(sorted(excluded_counts.items())),
            "per_stage": dict(sorted(per_stage.items(), key=lambda kv: int(kv[0]))),
        },
        "histogram_bins": HISTOGRAM_BINS,
        "shards": shards,
    }


class CurriculumReader:
    """Yields the curriculum in order, batch by batch, checking each shard against the manifest (sha256, row
    count, positions). A trainer that checkpoints the position it reached resumes with `rows(start=…)`."""

    def __init__(self, shard_dir: Path) -> None:
        self.shard_dir = Path(shard_dir)
        manifest_path = self.shard_dir / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no {MANIFEST} in {self.shard_dir}: run the curriculum stage first")
        try:
            self.manifest = json.loads(manifest_path.read_text())
            self.shards: list[dict[str, Any]] = list(self.manifest["shards"])
            self._kept = int(self.manifest["counts"]["kept"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{manifest_path} is not a readable curriculum manifest: {exc}") from exc

    def __len__(self) -> int:
        return self._kept

    def _shard(self, shard: dict[str, Any]) -> pa.Table:
        path = self.shard_dir / shard["file"]
        if not path.is_file():
            raise IntegrityError(f"{path} is listed in {MANIFEST} but missing; regenerate the shards")
        if _sha256_file(path) != shard["sha256"]:
            raise IntegrityError(f"{path} does not match the sha256 in {MANIFEST}; regenerate the shards")
        table = pq.read_table(path, schema=SHARD)
        expected = list(range(shard["first_position"], shard["first_position"] + shard["rows"]))
        if table.column("position").to_pylist() != expected:
            raise IntegrityError(f"{path} positions disagree with {MANIFEST} (expected {expected[0]}..)")
        return table

    def rows(self, start: int = 0) -> Iterator[dict[str, object]]:
        """Rows in curriculum order from position `start` (a checkpointed position; 0 = the beginning)."""
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in [0, {len(self)}], got {start}")
        for shard in self.shards:
            if shard["first_position"] + shard["rows"] <= start:
                continue  # wholly before the resume point: not even read
            for row in self._shard(shard).to_pylist():
                if row["position"] >= start:
                    yield row

    def batches(self, batch_size: int, start: int = 0) -> Iterator[list[dict[str, object]]]:
        """Batches of `batch_size` problems in curriculum order from `start` (the last one may be smaller)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        batch: list[dict[str, object]] = []
        for row in self.rows(start):
            batch.append(row)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
