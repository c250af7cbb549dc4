"""Stages after the curriculum: trainer exports (verl / TRL / HF datasets) and the trainer run.

Each reads the configured strategy's shards through `CurriculumReader` (sha256-checked, in order) and writes
under the data root: `exports/<student>/<strategy>/<format>/` and `runs/<student>/<run id>/`.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from scoring.config import ProjectConfig
from scoring.curriculum import CurriculumReader
from scoring.exports import export
from scoring.stages import StageSummary, curriculum_dir
from scoring.storage import DataRoot


def exports_dir(config: ProjectConfig, root: DataRoot) -> Path:
    return root.path / "exports" / config.student.id / config.curriculum.strategy_id


def build_exports(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Write the current curriculum in every configured trainer format, in curriculum order."""
    shard_dir = curriculum_dir(config, root)
    out_dir = exports_dir(config, root)
    rows = len(CurriculumReader(shard_dir))
    if rows == 0:
        # nothing to train on; the trainers' readers cannot load an empty dataset, so write nothing
        empty = pa.table({"format": pa.array([], pa.string())})
        return StageSummary(empty, {"rows": 0}, {"note": "empty curriculum: nothing exported"}, path=out_dir)
    results = export(shard_dir, out_dir, config.exports.formats, prompt=config.rollouts.prompt)
    table = pa.table(
        {
            "format": list(results),
            "path": [str(r.path) for r in results.values()],
            "files": [len(r.files) for r in results.values()],
            "rows": [r.rows for r in results.values()],
        }
    )
    return StageSummary(table, {"rows": rows, "formats": len(results)}, path=out_dir)
