"""Asset `supervision` (methods §14): teacher reasoning traces with verdicts, the student's difficulty and a
step-wise error estimate; SFT sets chosen by registered policies; preference pairs from the student's verified
rollouts; exports for TRL, verl and HF datasets. Off unless `supervision.enabled` is true."""

import dagster as dg

from assets.partitions import STUDENTS
from assets.resources import (
    DataRootResource,
    GeneratorEngineResource,
    ProjectResource,
    StudentEngineResource,
    TeacherEngineResource,
)
from assets.roles import RoleResources, run_role_stage
from scoring.stages.supervision import build_supervision

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
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    return run_role_stage(build_supervision, resources, section="supervision", query=POLICIES_QUERY, context=context)
