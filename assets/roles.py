"""The one body of the synthesis and skill assets: run a stage that calls the engine roles, or say it is off.

Each of these assets takes the same five resources, checks that its section of `gradus.yaml` is switched on (a
switched-off method starts no model), opens the engine roles for the run's student with the launchpad's teacher
and generator, calls its stage and reports the stage's metadata (`assets.metadata.stage_metadata`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce

import dagster as dg

from assets.metadata import disabled_metadata, stage_metadata
from assets.resources import (
    DataRootResource,
    GeneratorEngineResource,
    ProjectResource,
    StudentEngineResource,
    TeacherEngineResource,
    run_settings,
)
from scoring.config import ProjectConfig
from scoring.stages.report import StageSummary
from scoring.stages.roles import EngineRoles
from scoring.storage import DataRoot

RoleStage = Callable[[ProjectConfig, DataRoot, EngineRoles], StageSummary]


@dataclass(frozen=True, slots=True)
class RoleResources:
    """The resources every role-stage asset takes: project, data root and the three engine roles."""

    project: ProjectResource
    data_root: DataRootResource
    student: StudentEngineResource
    teacher: TeacherEngineResource
    generator: GeneratorEngineResource


def run_role_stage(
    stage: RoleStage,
    resources: RoleResources,
    *,
    section: str,
    query: str,
    context: dg.AssetExecutionContext | None = None,
    enabled: Callable[[ProjectConfig], bool] | None = None,
    extra: Mapping[str, int | str] | None = None,
) -> dg.MaterializeResult:
    """Run `stage` with the run's engine roles and report its metadata (with `query`, and `extra` entries).

    `section` is the dotted config section that switches the stage on (`synthesis.glan`, `skills`); `enabled`
    replaces its `.enabled` flag when the stage has more conditions. `context` is passed for a student-partitioned
    asset, so the partition's student is the one graded."""
    root, config = run_settings(resources.project, resources.student, resources.data_root, context)
    switched_on = enabled(config) if enabled is not None else reduce(getattr, section.split("."), config).enabled
    if not switched_on:
        return dg.MaterializeResult(metadata=disabled_metadata(section))
    with open_roles(with_role_engines(config, resources.teacher, resources.generator), root) as roles:
        summary = stage(config, root, roles)
    return dg.MaterializeResult(metadata={**stage_metadata(summary, query=query), **(extra or {})})


def with_role_engines(
    config: ProjectConfig, teacher: TeacherEngineResource, generator: GeneratorEngineResource
) -> ProjectConfig:
    """`config` whose teacher and generator are the (possibly launchpad-overridden) role resources'."""
    return config.model_copy(update={"teacher": teacher.engine_config(), "generator": generator.engine_config()})


@contextmanager
def open_roles(config: ProjectConfig, root: DataRoot) -> Iterator[EngineRoles]:
    """The run's engines by role, started on first use and stopped after (roles with one config share a model)."""
    roles = EngineRoles(config, root)
    try:
        yield roles
    finally:
        roles.close()
