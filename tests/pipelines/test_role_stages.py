"""The one body of the synthesis and skill assets (`assets/roles.py`) and the metadata it reports
(`assets.metadata.stage_metadata`), without a model: a stage double stands in for the real stage, and the engine
roles it is handed are never asked for an engine, so none is started."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.metadata import stage_metadata
from assets.roles import RoleResources, run_role_stage
from pipelines.resources import build_resources
from scoring.config import ProjectConfig
from scoring.schemas import PROBLEMS, to_table
from scoring.stages.report import StageSummary
from scoring.stages.roles import EngineRoles
from scoring.storage import DataRoot

CONFIG = """
data_root: {root}
student: {{id: roles-test, engine: {{backend: embedded, model: qwen2.5-coder-0.5b-instruct-q4_k_m}}}}
teacher: {{backend: openai, base_url: 'http://127.0.0.1:9', model: big-teacher}}
synthesis: {{glan: {{enabled: true}}}}
"""


def _summary() -> StageSummary:
    blocks = {"funnel": "| stage | in |", "reject_reasons": "", "preview": "| question |"}
    figures = {"model_calls": 3, "seconds": 1.5, "status": "ok"}
    return StageSummary(to_table([], PROBLEMS), {"kept": 0}, figures, Path("/data/x"), markdown=blocks)


def test_stage_metadata_renders_markdown_blocks_under_their_own_labels() -> None:
    metadata = stage_metadata(_summary(), query="select 1")
    assert metadata["funnel"] == dg.MetadataValue.md("| stage | in |")
    assert metadata["preview"] == dg.MetadataValue.md("| question |")
    assert "reject_reasons" not in metadata, "an empty block is left out"
    assert metadata["kept"] == dg.MetadataValue.int(0) and metadata["model_calls"] == dg.MetadataValue.int(3)
    assert metadata["seconds"] == dg.MetadataValue.float(1.5) and metadata["status"] == dg.MetadataValue.text("ok")
    assert metadata["dagster/row_count"] == dg.MetadataValue.int(0)
    assert metadata["duckdb_query"] == dg.MetadataValue.md("```sql\nselect 1\n```")
    assert metadata["path"] == dg.MetadataValue.path("/data/x")


def _resources(tmp_path: Path) -> RoleResources:
    config = tmp_path / "gradus.yaml"
    config.write_text(CONFIG.format(root=tmp_path / "root"))
    made = build_resources(config)
    return RoleResources(made["project"], made["data_root"], made["student"], made["teacher"], made["generator"])


def test_a_switched_on_stage_runs_with_the_role_engines_and_reports_its_metadata(tmp_path: Path) -> None:
    seen: list[ProjectConfig] = []

    def stage(config: ProjectConfig, root: DataRoot, roles: EngineRoles) -> StageSummary:
        seen.append(roles.project)  # what the roles start engines from: the launchpad's role resources
        return _summary()

    result = run_role_stage(stage, _resources(tmp_path), section="synthesis.glan", query="select 1", extra={"round": 2})
    assert seen and seen[0].teacher is not None and seen[0].teacher.model == "big-teacher"
    assert seen[0].generator is not None and seen[0].generator.model == "big-teacher"
    assert result.metadata is not None
    assert result.metadata["funnel"] == dg.MetadataValue.md("| stage | in |") and result.metadata["round"] == 2


def test_a_switched_off_stage_is_not_called(tmp_path: Path) -> None:
    def stage(config: ProjectConfig, root: DataRoot, roles: EngineRoles) -> StageSummary:
        raise AssertionError("a switched-off stage must not run")

    resources = _resources(tmp_path)
    off = run_role_stage(stage, resources, section="synthesis.scalequest", query="select 1")
    assert off.metadata is not None and off.metadata["enabled"] == dg.MetadataValue.bool(False)
    assert "synthesis.scalequest.enabled" in str(off.metadata["note"].value)
    vetoed = run_role_stage(stage, resources, section="synthesis.glan", query="select 1", enabled=lambda c: False)
    assert vetoed.metadata is not None and vetoed.metadata["enabled"] == dg.MetadataValue.bool(False)
