"""The pool between sources and grading: near-duplicates removed, benchmark leaks flagged.

`problems` keeps every problem a source produced. `duplicates` records each dropped near-duplicate with the
problem kept in its place; `contamination` records each problem that matches a benchmark item. Neither is
deleted from `problems`: the pool that gets rollouts and reaches the curriculum is `problems` minus both, and
the curriculum lists them in `curriculum_excluded` with the reason — nothing is dropped silently.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engines import Engine
from engines.embeddings import load_embedder
from scoring.curation.decontam import BenchmarkSpec, DecontamConfig, decontaminate
from scoring.curation.dedup import DedupConfig, deduplicate
from scoring.curation.similarity import Embed
from scoring.schemas import REJECTS, to_table
from scoring.storage import DataRoot


class DecontaminationConfig(BaseModel):
    """Benchmarks to check the pool against (file + importer preset or field mapping) and the detectors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    benchmarks: list[BenchmarkSpec] = Field(default_factory=list)
    detectors: DecontamConfig = Field(default_factory=DecontamConfig)

    @model_validator(mode="after")
    def _judge_has_vectors(self) -> DecontaminationConfig:
        if self.detectors.judge.enabled and not self.detectors.embedding_model:
            raise ValueError(
                "decontamination.detectors.judge needs the embedding detector's vectors to pick the nearest items: "
                "set decontamination.detectors.embedding_model (e.g. all-MiniLM-L6-v2)"
            )
        return self


def _problem_rows(root: DataRoot, columns: list[str]) -> list[dict[str, object]]:
    # only the columns a stage reads: at a million problems, metadata and the rest double the memory
    return root.read_table("problems", columns=columns).to_pylist()


def build_duplicates(dedup: DedupConfig, root: DataRoot) -> tuple[pa.Table, dict[str, int]]:
    """Run the dedup stages over `problems` and write `duplicates` (one row per dropped problem)."""
    problems = _problem_rows(root, ["problem_id", "question", "answer", "solution", "source"])
    embed = load_embedder(dedup.embedding_model, root.embedding_cache_path) if dedup.semantic == "embedding" else None
    result = deduplicate(problems, dedup, embed)
    root.write_table("duplicates", result.duplicates)
    counts = {"problems": len(problems), "kept": len(result.kept_ids), "duplicates": result.duplicates.num_rows}
    counts |= {f"dropped_{method}": n for method, n in result.counts.items()}
    return result.duplicates, counts


def build_contamination(
    settings: DecontaminationConfig,
    root: DataRoot,
    base_dir: Path,
    judge_engine: Engine | None = None,
    embed: Embed | None = None,
) -> tuple[pa.Table, dict[str, int]]:
    """Check the deduplicated pool against every configured benchmark; write `contamination` and (the judge's
    answers, empty when it is off) `contamination_judgements`. `embed` replaces the configured embedding model
    (a caller that already holds one)."""
    dropped = set(root.read_table("duplicates").column("problem_id").to_pylist())
    problems = [p for p in _problem_rows(root, ["problem_id", "question"]) if p["problem_id"] not in dropped]
    model = settings.detectors.embedding_model
    if embed is None and model:
        embed = load_embedder(model, root.embedding_cache_path)
    result = decontaminate(
        problems, settings.benchmarks, settings.detectors, base_dir=base_dir, embed=embed, judge_engine=judge_engine
    )
    root.write_table("contamination", result.contamination)
    root.write_table("contamination_judgements", result.judgements)
    rejects = [
        {"stage": "decontamination", "input_ref": r.input_ref, "reason": r.reason, "raw_text": r.raw_text}
        for r in result.rejects
    ]
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": "benchmarks"})
    counts = {"checked": len(problems), "flagged": len(result.flagged_ids)}
    counts |= {f"flagged_{name}": n for name, n in result.counts.items()}
    if settings.detectors.judge.enabled:
        verdicts = result.judgements.column("verdict").to_pylist()
        counts |= {f"judge_{v}": verdicts.count(v) for v in ("yes", "no", "failed")}
    return result.contamination, counts


def excluded_from_pool(root: DataRoot) -> dict[str, str]:
    """problem_id → why it is not in the pool (a duplicate of another, or a benchmark match)."""
    reasons: dict[str, str] = {}
    for row in root.read_table("duplicates").to_pylist():
        reasons[row["problem_id"]] = f"duplicate ({row['method']}, {row['similarity']:.2f}) of {row['kept_id']}"
    for row in root.read_table("contamination").to_pylist():
        reasons.setdefault(
            row["problem_id"],
            f"contaminated: matches {row['benchmark']} item {row['benchmark_item_id']} ({row['method']}, "
            f"{row['score']:.2f})",
        )
    return reasons


def contaminated_in_shards(root: DataRoot, shard_problem_ids: list[str]) -> list[str]:
    """Shard problems that are in the `contamination` table (should be none)."""
    flagged = set(root.read_table("contamination").column("problem_id").to_pylist())
    return sorted({pid for pid in shard_problem_ids if pid in flagged})
