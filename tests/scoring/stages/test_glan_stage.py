"""GLAN's three stages end to end on the real 0.5B CPU model (teacher = student): taxonomy → subjects → syllabus
→ homework questions → answers → agreement, each level its own table; an edit to the syllabus table reaches the
question prompts; a rerun makes no model call and rewrites identical tables."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from scoring.config import ProjectConfig
from scoring.stages.glan import build_glan_syllabus, build_glan_taxonomy
from scoring.stages.glan_problems import build_glan_problems, load_courses
from scoring.stages.synthesis_log import synth_partition
from scoring.storage import DataRoot
from synthesis import glan, glan_combinations
from synthesis.config import AnswerCheckConfig, SynthesisConfig
from synthesis.glan import GlanConfig
from tests.scoring.stages.conftest import MakeRoles, project_config

TABLES = ("glan_disciplines", "glan_subjects", "glan_syllabus")
LOGS = ("glan_taxonomy", "glan_syllabus", "glan")
# ~3k generated tokens: a few minutes on 2 idle cores, far longer when other jobs share them.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

METADATA = {"field", "sub_field", "discipline", "subject", "level", "session_idx", "key_concepts", "n_sessions_sampled"}


def glan_project(tmp_path: Path, **overrides: object) -> ProjectConfig:
    """1 discipline, 1 subject, 2 sessions of 3 concepts, 4 questions (2 spanning both sessions), short replies
    and one agreement solution, so the whole run stays small on 2 CPU cores."""
    settings: dict[str, object] = {
        "enabled": True,
        "disciplines": 1,
        "subjects_per_discipline": 1,
        "sessions_per_subject": 2,
        "concepts_per_session": 3,
        "questions": 4,
        "two_session_share": 0.5,
        "list_max_tokens": 256,
        "question_max_tokens": 128,
        "answer_max_tokens": 256,
    }
    return project_config(
        tmp_path,
        student="glan",
        n_ctx=1024,
        synthesis=SynthesisConfig(
            answers=AnswerCheckConfig(k=1, min_votes=1, max_tokens=192), glan=GlanConfig(**settings | overrides)
        ),
    )


def _snapshot(root: DataRoot) -> dict[str, list[dict]]:
    tables: dict[str, pa.Table] = {t: root.read_table(t) for t in TABLES}
    for method in LOGS:
        tables[f"log:{method}"] = root.read_table("synthesis_log", synth_partition(method))
    tables["problems"] = root.read_table("synthesized_problems", synth_partition("glan"))
    return {name: table.to_pylist() for name, table in tables.items()}


def _run_all(config: ProjectConfig, root: DataRoot, roles: MakeRoles) -> list:
    engine_roles = roles(config, root)
    return [
        build(config, root, engine_roles, progress=False)
        for build in (build_glan_taxonomy, build_glan_syllabus, build_glan_problems)
    ]


@pytest.fixture(scope="module")
def glan_run(roles: MakeRoles, tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("glan")
    config, root = glan_project(path), DataRoot(path)
    return config, root, _run_all(config, root, roles)


def test_every_level_is_written_and_every_candidate_logged(glan_run) -> None:
    config, root, (taxonomy, syllabus, problems) = glan_run
    disciplines = root.read_table("glan_disciplines").to_pylist()
    assert len(disciplines) == 1 and disciplines[0]["source"] == "taxonomy:math_reasoning.yaml"
    subjects = root.read_table("glan_subjects").to_pylist()
    assert taxonomy.counts["subjects"] == len(subjects) == 1, taxonomy.markdown["funnel"]
    assert subjects[0]["discipline"] == disciplines[0]["discipline"] and subjects[0]["subtopics"]
    sessions = root.read_table("glan_syllabus").to_pylist()
    assert syllabus.counts["sessions"] == len(sessions) == 2, syllabus.markdown["funnel"]
    assert all(1 <= len(s["key_concepts"]) <= 3 for s in sessions)

    counts = problems.counts
    assert counts["requested"] == counts["combinations"] == 4
    assert counts["combinations"] >= counts["questions_parsed"] >= counts["answers_parsed"] >= counts["agreed"]
    assert counts["agreed"] == counts["kept"] == problems.table.num_rows
    log = root.read_table("synthesis_log", synth_partition("glan")).to_pylist()
    questions = [r for r in log if r["stage"] == "question"]
    assert len(questions) == 4 and sum(r["kept"] for r in questions) == counts["questions_parsed"]
    assert sum(r["stage"] == "answer" for r in log) == counts["questions_parsed"]
    assert sum(r["stage"] == "agreement" for r in log) == counts["answers_parsed"]
    assert all(r["reason"] for r in log if not r["kept"]), "every rejection says why"
    spans = [json.loads(r["detail"])["sessions"] for r in questions]
    assert sorted(len(s) for s in spans) == [1, 1, 2, 2]  # two_session_share 0.5
    assert set(problems.markdown) == {"funnel", "reject_reasons", "preview"}
    assert all(block.startswith("|") for block in problems.markdown.values())
    assert not any(str(v).startswith("|") for v in problems.figures.values()), "figures hold no tables"
    upper = root.read_table("synthesis_log", synth_partition("glan_taxonomy")).to_pylist()
    assert {"taxonomy", "subjects", "subject"} <= {r["stage"] for r in upper}
    assert counts["answers_parsed"] >= 1, problems.markdown["reject_reasons"]


def test_accepted_problems_carry_their_place_in_the_taxonomy(glan_run) -> None:
    config, root, (_, _, problems) = glan_run
    accepted = problems.table.to_pylist()
    answers = [
        r for r in root.read_table("synthesis_log", synth_partition("glan")).to_pylist() if r["stage"] == "agreement"
    ]
    assert len(accepted) == sum(r["kept"] for r in answers)
    syllabus_concepts = {c for s in root.read_table("glan_syllabus").to_pylist() for c in s["key_concepts"]}
    for row in accepted:
        meta = json.loads(row["metadata"])
        assert set(meta) >= METADATA and meta["field"] in ("Mathematics", "Quantitative reasoning")
        assert set(meta["key_concepts"]) <= syllabus_concepts and meta["n_sessions_sampled"] == len(meta["session_idx"])
        assert row["source"] == "glan" and row["family"] == f"glan:{meta['discipline']}"
        assert json.loads(row["checks_passed"]) == ["question_parse", "answer_parse", "agreement"]
        assert row["generator_model"] and row["answer"]
    # Every answer that reached the check is on the log with its votes, accepted or not.
    for row in answers:
        assert {"votes", "k", "answer"} <= set(json.loads(row["detail"]))


def test_rerun_makes_no_model_call_and_rewrites_identical_tables(glan_run, roles: MakeRoles) -> None:
    config, root, _ = glan_run
    before = _snapshot(root)
    again = _run_all(config, root, roles)
    assert [s.figures["model_calls"] for s in again] == [0, 0, 0]
    assert _snapshot(root) == before


def _prompts(table: pa.Table, n: int, seed: int) -> list[str]:
    """The question prompts `build_glan_problems` sends for this syllabus table."""
    courses = load_courses(table)
    combos = glan_combinations.sample_combinations(courses, n, 0.5, seed=seed)
    return [
        glan.question_prompt(courses[c.course], c.concepts(courses[c.course]), c.session_numbers(courses[c.course]))
        for c in combos
    ]


def test_an_edited_syllabus_reaches_the_question_prompts(glan_run, roles: MakeRoles, tmp_path: Path) -> None:
    config, root, _ = glan_run
    edited = DataRoot(tmp_path)  # a copy of the run, so the other tests keep the original tables
    for table in ("glan_disciplines", "glan_subjects"):
        edited.write_table(table, root.read_table(table))
    original = root.read_table("glan_syllabus")
    rows = original.to_pylist()
    new = "the complement rule P(not A) = 1 - P(A)"
    rows[0]["key_concepts"] = [new, *rows[0]["key_concepts"][1:]]
    edited.write_table("glan_syllabus", pa.Table.from_pylist(rows, schema=original.schema))
    glan_config = config.synthesis.glan.model_copy(update={"questions": 2})
    small = config.model_copy(update={"synthesis": config.synthesis.model_copy(update={"glan": glan_config})})

    after = _prompts(edited.read_table("glan_syllabus"), 2, glan_config.seed)
    before = _prompts(original, 2, glan_config.seed)
    assert len(after) == 2 and all(new in p for p in after)  # the full syllabus is in every prompt
    assert all(a != b for a, b in zip(after, before, strict=True))
    summary = build_glan_problems(small, edited, roles(small, edited), progress=False)
    asked = [
        r for r in edited.read_table("synthesis_log", synth_partition("glan")).to_pylist() if r["stage"] == "question"
    ]
    assert len(asked) == 2 and summary.figures["model_calls"] >= 2, "the edited prompts are new calls"
