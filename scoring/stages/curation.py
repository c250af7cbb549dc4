"""The curation stages between `problems` and grading: near-duplicates and benchmark contamination.

The work is in `scoring.curation` (which takes the dedup and decontamination sub-configs); these stages hand it the
project's settings and wrap what it wrote in a `StageSummary`.
"""

from __future__ import annotations

from pathlib import Path

from scoring.config import ProjectConfig
from scoring.curation.pool import build_contamination, build_duplicates
from scoring.stages.report import StageSummary
from scoring.stages.roles import EngineRoles
from scoring.storage import DataRoot


def build_dedup(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Exact, MinHash and (optionally) semantic near-duplicates of `problems` into `duplicates`."""
    table, counts = build_duplicates(config.dedup, root)
    return StageSummary(table, counts, path=root.table_path("duplicates"))


def build_decontamination(config: ProjectConfig, root: DataRoot, roles: EngineRoles | None = None) -> StageSummary:
    """Benchmark leaks in the deduplicated pool into `contamination` (n-gram overlap, similarity and, when
    `decontamination.detectors.judge` is on, the teacher engine's judgement). With the judge on and no `roles`
    given, the project's roles are opened here and closed after; with it off, no model starts."""
    settings = config.decontamination
    if not settings.detectors.judge.enabled:
        table, counts = build_contamination(settings, root, Path(config.base_dir))
    elif roles is not None:
        table, counts = build_contamination(settings, root, Path(config.base_dir), roles.teacher)
    else:
        with EngineRoles(config, root) as opened:
            table, counts = build_contamination(settings, root, Path(config.base_dir), opened.teacher)
    return StageSummary(table, counts, path=root.table_path("contamination"))
