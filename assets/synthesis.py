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
    open_roles,
    run_settings,
    with_role_engines,
)
from assets.synthesis_metadata import disabled_metadata, stage_metadata
from scoring.stages.glan import build_glan_problems, build_glan_syllabus, build_glan_taxonomy
from scoring.stages.restructure import build_restructure
from scoring.stages.scalequest import build_scalequest
from scoring.stages.socratic import build_socratic_round

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
    root, config = run_settings(project, student, data_root)
    if not config.synthesis.scalequest.enabled:
        return dg.MaterializeResult(metadata=disabled_metadata("synthesis.scalequest"))
    with open_roles(with_role_engines(config, teacher, generator), root) as roles:
        summary = build_scalequest(config, root, roles)
    return dg.MaterializeResult(metadata=stage_metadata(summary, query=_query("scalequest")))


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
    root, config = run_settings(project, student, data_root)
    if not config.synthesis.glan.enabled:
        return dg.MaterializeResult(metadata=disabled_metadata("synthesis.glan"))
    with open_roles(with_role_engines(config, teacher, generator), root) as roles:
        summary = build_glan_taxonomy(config, root, roles)
    query = "select discipline, subject, level, subtopics from glan_subjects order by all"
    return dg.MaterializeResult(metadata=stage_metadata(summary, query=query))


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
    root, config = run_settings(project, student, data_root)
    if not config.synthesis.glan.enabled:
        return dg.MaterializeResult(metadata=disabled_metadata("synthesis.glan"))
    with open_roles(with_role_engines(config, teacher, generator), root) as roles:
        summary = build_glan_syllabus(config, root, roles)
    query = "select subject, session_idx, session_title, key_concepts from glan_syllabus order by all"
    return dg.MaterializeResult(metadata=stage_metadata(summary, query=query))


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
    root, config = run_settings(project, student, data_root)
    if not config.synthesis.glan.enabled:
        return dg.MaterializeResult(metadata=disabled_metadata("synthesis.glan"))
    with open_roles(with_role_engines(config, teacher, generator), root) as roles:
        summary = build_glan_problems(config, root, roles)
    return dg.MaterializeResult(metadata=stage_metadata(summary, query=_query("glan")))


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
    root, config = run_settings(project, student, data_root)
    if not config.synthesis.socratic.enabled:
        return dg.MaterializeResult(metadata=disabled_metadata("synthesis.socratic"))
    round_no = int(context.partition_key)
    with open_roles(with_role_engines(config, teacher, generator), root) as roles:
        summary = build_socratic_round(config, root, roles, round_no)
    query = _query("socratic") + f" -- and round = {round_no}"
    return dg.MaterializeResult(metadata={**stage_metadata(summary, query=query), "round": round_no})


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
    root, config = run_settings(project, student, data_root, context)
    if not config.synthesis.restructure.enabled:
        return dg.MaterializeResult(metadata=disabled_metadata("synthesis.restructure"))
    with open_roles(with_role_engines(config, teacher, generator), root) as roles:
        summary = build_restructure(config, root, roles)
    return dg.MaterializeResult(metadata=stage_metadata(summary, query=_query("restructure")))


def socratic_round_keys(rounds: int) -> list[str]:
    """The partition keys of rounds 1..rounds."""
    return [str(r) for r in range(1, rounds + 1)]
