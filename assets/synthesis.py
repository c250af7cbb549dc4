"""Synthesis assets: ScaleQuest, the three GLAN levels, Socratic-Zero rounds and CLPO/GHPO restructuring.

Each method is switched on in `gradus.yaml` (`synthesis.<method>.enabled`); switched off, its asset reports so and
starts no model. Accepted problems land in `synthesized_problems`, which the `problems` asset unions into the
pool. Methods that learn from the student's failures (Socratic-Zero, restructuring) read grades, so their
problems are graded on the next build (the `synthesize_more` job is followed by `build_all`, see pipelines/jobs).
"""

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
from scoring.stages.glan import build_glan_syllabus, build_glan_taxonomy
from scoring.stages.glan_problems import build_glan_problems
from scoring.stages.report import StageSummary
from scoring.stages.restructure import build_restructure
from scoring.stages.roles import EngineRoles
from scoring.stages.scalequest import build_scalequest
from scoring.stages.socratic import build_socratic_round
from scoring.storage import DataRoot

SOCRATIC_ROUNDS = dg.DynamicPartitionsDefinition(name="socratic_rounds")

_FUNNEL_QUERY = (
    "select stage, kept, reason, count(*) as n from synthesis_log where method = '{method}' group by all order by all"
)


def _query(method: str) -> str:
    return _FUNNEL_QUERY.format(method=method)


@dg.asset(
    group_name="synthesis",
    kinds={"python", "parquet"},
    description="ScaleQuest: seed-free questions from the generator, filtered for language and solvability, "
    "answered best-of-n by majority vote, thinned of too-easy ones by our own difficulty (methods §8).",
)
def scalequest_problems(
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    return run_role_stage(build_scalequest, resources, section="synthesis.scalequest", query=_query("scalequest"))


@dg.asset(
    group_name="synthesis",
    kinds={"python", "parquet"},
    description="GLAN level 1: disciplines (from a taxonomy file or the teacher) and their subjects (methods §9). "
    "Edit `glan_subjects` before materializing the syllabus to steer what gets taught.",
)
def glan_taxonomy(
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    query = "select discipline, subject, level, subtopics from glan_subjects order by all"
    return run_role_stage(build_glan_taxonomy, resources, section="synthesis.glan", query=query)


@dg.asset(
    group_name="synthesis",
    kinds={"python", "parquet"},
    deps=[glan_taxonomy],
    description="GLAN level 2: a syllabus per subject — class sessions with key concepts — read from the "
    "(editable) `glan_subjects` table.",
)
def glan_syllabus(
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    query = "select subject, session_idx, session_title, key_concepts from glan_syllabus order by all"
    return run_role_stage(build_glan_syllabus, resources, section="synthesis.glan", query=query)


@dg.asset(
    group_name="synthesis",
    kinds={"python", "parquet"},
    deps=[glan_syllabus],
    description="GLAN level 3: homework questions from sampled key-concept combinations (one or two sessions), "
    "answered by the teacher and kept when independent solutions agree.",
)
def glan_problems(
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    return run_role_stage(build_glan_problems, resources, section="synthesis.glan", query=_query("glan"))


@dg.asset(
    group_name="synthesis",
    kinds={"python", "parquet"},
    partitions_def=SOCRATIC_ROUNDS,
    description="Socratic-Zero, one partition per round: the teacher turns the student's failed attempts into "
    "new problems, kept when the student's pass rate on them is near 0.5 (methods §10). Round r reads round r-1.",
)
def socratic_problems(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    round_no = int(context.partition_key)  # the partition is the round, not a student: no context for the stage

    def one_round(config: ProjectConfig, root: DataRoot, roles: EngineRoles) -> StageSummary:
        return build_socratic_round(config, root, roles, round_no)

    resources = RoleResources(project, data_root, student, teacher, generator)
    query = _query("socratic") + f" -- and round = {round_no}"
    return run_role_stage(one_round, resources, section="synthesis.socratic", query=query, extra={"round": round_no})


@dg.asset(
    group_name="synthesis",
    kinds={"python", "parquet"},
    partitions_def=STUDENTS,
    deps=["difficulty"],
    description="CLPO/GHPO restructuring for this student: simplified and hinted variants of problems it always "
    "fails, paraphrases of medium ones; each keeps its parent_id and the parent's answer (methods §13).",
)
def restructured_problems(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    teacher: TeacherEngineResource,
    generator: GeneratorEngineResource,
) -> dg.MaterializeResult:
    resources = RoleResources(project, data_root, student, teacher, generator)
    query = _query("restructure")
    return run_role_stage(build_restructure, resources, section="synthesis.restructure", query=query, context=context)


def socratic_round_keys(rounds: int) -> list[str]:
    """The partition keys of rounds 1..rounds."""
    return [str(r) for r in range(1, rounds + 1)]
