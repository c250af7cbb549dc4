"""Asset `supervision` (methods §14): teacher reasoning traces with verdicts, the student's difficulty and a
step-wise error estimate; SFT sets chosen by registered policies; preference pairs from the student's verified
rollouts; exports for TRL, verl and HF datasets. Off unless `supervision.enabled` is true."""

import dagster as dg

from assets.partitions import STUDENTS
from assets.resources import (
    CatalogResource,
    DataRootResource,
    GeneratorEngineResource,
    ProjectResource,
    StudentEngineResource,
    TeacherEngineResource,
)
from assets.roles import RoleResources, run_role_stage
from scoring.config import ProjectConfig
from scoring.stages.report import StageSummary
from scoring.stages.roles import EngineRoles
from scoring.stages.supervision import build_supervision
from scoring.storage import DataRoot

POLICIES_QUERY = "select * from supervision_policies"


@dg.asset(
    group_name="supervision",
    kinds={"python", "parquet"},
    partitions_def=STUDENTS,
    deps=["difficulty"],
    description="SFT traces and preference pairs chosen by difficulty: traces from the teacher (or other roles) "
    "verified and step-checked, selected by hard_first / low_step_error_first / correct_only / weak_to_strong, "
    "pairs of the student's correct and wrong rollouts, exported for TRL, verl and HF datasets.",
)
def supervision(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    def stage(config: ProjectConfig, root: DataRoot, roles: EngineRoles) -> StageSummary:
        summary = build_supervision(config, root, roles)
        catalog.refresh()  # publish the new tables and the supervision_policies view to DuckDB
        return summary

    resources = RoleResources(project, data_root, student, teacher, generator)
    return run_role_stage(stage, resources, section="supervision", query=POLICIES_QUERY, context=context)
