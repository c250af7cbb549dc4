"""Skill assets (STAT, methods §7): the vocabulary, per-problem labels, the student's missing-skill profile,
STAT-Syn problems for its weakest skills, and a check that no skill dominates the curriculum."""

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
from scoring.config import ProjectConfig
from scoring.stages.skills import build_problem_skills, build_skill_profile, build_skill_vocabulary
from scoring.stages.stat_syn import build_stat_syn

WEAKEST_SKILLS_QUERY = """select skill_id, n_problems, round(pass_rate, 3) as pass_rate,
       n_fail_attributed, round(fail_share, 3) as fail_share
from skill_profile order by fail_share desc, pass_rate asc limit 5"""


@dg.asset(
    group_name="skills",
    kinds={"python", "parquet"},
    deps=["problems"],
    description="The skill vocabulary: a user YAML file, the families' and GLAN's known skills, and skills the "
    "teacher proposes from a sample of the pool — deduplicated, with stable ids and definitions.",
)
def skill_vocabulary(
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    query = "select source, count(*) from skills group by all order by all"
    return run_role_stage(build_skill_vocabulary, resources, section="skills", query=query)


@dg.asset(
    group_name="skills",
    kinds={"python", "parquet"},
    deps=[skill_vocabulary],
    description="1–5 skill ids per problem: known ones from families and GLAN, the rest from the teacher with "
    "constrained output (unknown ids are rejected with the reason; labels versioned skills_teacher_v1).",
)
def problem_skills(
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    query = "select skill_id, labeler, count(*) from problem_skills group by all order by 3 desc"
    return run_role_stage(build_problem_skills, resources, section="skills", query=query)


@dg.asset(
    group_name="skills",
    kinds={"python", "parquet"},
    partitions_def=STUDENTS,
    deps=[problem_skills, "difficulty"],
    description="The student's missing-skill profile: per skill, pass rate from its grades and the share of "
    "failed rollouts the teacher attributes to it (with intervals), and the STAT-Sel weight the curriculum uses.",
)
def skill_profile(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    return run_role_stage(build_skill_profile, resources, section="skills", query=WEAKEST_SKILLS_QUERY, context=context)


def _stat_syn_enabled(config: ProjectConfig) -> bool:
    return config.skills.enabled and config.skills.syn_per_skill != 0


@dg.asset(
    group_name="synthesis",
    kinds={"python", "parquet"},
    partitions_def=STUDENTS,
    deps=[skill_profile],
    description="STAT-Syn: for the student's weakest skills, new problems the teacher writes from reference "
    "problems of that skill; kept when independent solutions agree (2 of 3), then graded like any source.",
)
def stat_syn_problems(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    query = "select stage, kept, reason, count(*) from synthesis_log where method = 'stat_syn' group by all"
    return run_role_stage(
        build_stat_syn, resources, section="skills", query=query, context=context, enabled=_stat_syn_enabled
    )
