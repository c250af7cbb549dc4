"""GLAN's pure parts (methods §9): taxonomy files, concept-combination counts and sampling, the exact prompts,
and the reply parsers over recorded real completions of the 0.5B model (`tests/fixtures/record_glan.py`)."""

from __future__ import annotations

import json
from itertools import combinations
from math import comb
from pathlib import Path

import pytest
from pydantic import ValidationError

from engines.errors import ConfigError
from synthesis import glan
from synthesis.glan_combinations import (
    sample_combinations,
    single_session_combinations,
    single_session_count,
    two_session_combinations,
    two_session_count,
)
from synthesis.structured import ParseError
from synthesis.taxonomies import DEFAULT_TAXONOMY, TAXONOMY_DIR, Discipline, load_taxonomy, taxonomy_path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "synthesis" / "glan_completions.jsonl"

COURSE = glan.Course(
    "Probability",
    "Introduction to Probability",
    "high school",
    (
        glan.CourseSession(1, "Counting outcomes", ("sample space", "equally likely outcomes", "complement rule")),
        glan.CourseSession(2, "Combining events", ("independent events", "multiplication rule", "expected value")),
    ),
)


# ---- config and taxonomy ---------------------------------------------------------------------------------------


def test_config_keeps_enabled_and_forbids_unknown_keys() -> None:
    config = glan.GlanConfig()
    assert config.enabled is False and config.taxonomy is None and config.temperature == 1.0
    assert config.answer_temperature == 0.7 and config.top_p == 0.95
    with pytest.raises(ValidationError, match="subject_cals"):
        glan.GlanConfig(subject_cals=3)


def test_shipped_default_taxonomy_loads() -> None:
    path = taxonomy_path(None, Path("/nowhere"))
    assert path == TAXONOMY_DIR / f"{DEFAULT_TAXONOMY}.yaml" == taxonomy_path(DEFAULT_TAXONOMY, Path("/nowhere"))
    disciplines = load_taxonomy(path)
    assert {d.field for d in disciplines} == {"Mathematics", "Quantitative reasoning"}
    assert Discipline("Mathematics", "Number theory", "Elementary number theory") in disciplines
    assert len({d.discipline for d in disciplines}) == len(disciplines) >= 15


def test_taxonomy_path_resolves_user_files_from_the_config_dir(tmp_path: Path) -> None:
    assert taxonomy_path("mine.yaml", tmp_path) == tmp_path / "mine.yaml"
    assert taxonomy_path("/abs/t.yaml", tmp_path) == Path("/abs/t.yaml")


GOOD = (
    "fields:\n  - name: Physics\n    sub_fields:\n      - name: Mechanics\n        disciplines: [Kinematics, Statics]\n"
)


def test_user_taxonomy_loads_in_file_order(tmp_path: Path) -> None:
    path = tmp_path / "physics.yaml"
    path.write_text("name: physics\ndescription: one field\n" + GOOD)
    assert load_taxonomy(path) == [
        Discipline("Physics", "Mechanics", "Kinematics"),
        Discipline("Physics", "Mechanics", "Statics"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feilds: []\n", "unknown key 'feilds'"),
        (GOOD.replace("disciplines:", "disciplnes:"), "unknown key 'fields.0.sub_fields.0.disciplnes'"),
        (GOOD.replace("sub_fields:", "subfields:"), "unknown key 'fields.0.subfields'"),
        (GOOD.replace("[Kinematics, Statics]", "[]"), "fields.0.sub_fields.0.disciplines: List should have at least 1"),
        (GOOD.replace("name: Mechanics", "name: '  '"), "fields.0.sub_fields.0.name: Value error, must not be empty"),
        (GOOD.replace("Statics", "kinematics"), "discipline 'kinematics' is listed twice"),
        ("fields: []\n", "fields: List should have at least 1 item"),
        ("- Physics\n", "must hold a mapping with 'fields', got list"),
        ("fields: [\n", "is not valid YAML"),
    ],
    ids=["top", "deep", "sub_fields", "empty_list", "blank_name", "duplicate", "no_fields", "not_mapping", "yaml"],
)
def test_bad_taxonomy_names_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_taxonomy(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_taxonomy_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist \(shipped taxonomies: .*math_reasoning"):
        load_taxonomy(tmp_path / "nope.yaml")


def test_discipline_sample_is_seeded_and_keeps_taxonomy_order() -> None:
    disciplines = load_taxonomy(taxonomy_path(None, Path(".")))
    first = glan.select_disciplines(disciplines, 4, seed=0)
    assert first == glan.select_disciplines(disciplines, 4, seed=0) and len(first) == 4
    assert first == sorted(first, key=disciplines.index)
    assert glan.select_disciplines(disciplines, 4, seed=1) != first
    assert glan.select_disciplines(disciplines, 999, seed=0) == disciplines


# ---- concept combinations (§2.4) --------------------------------------------------------------------------------


def test_single_session_count_matches_the_paper() -> None:
    assert single_session_count(5) == 31  # the paper's worked number
    assert two_session_count(5, 5) == 575  # 627 − 26 − 26


@pytest.mark.parametrize("m", range(0, 9))
def test_single_session_enumeration_matches_the_formula(m: int) -> None:
    combos = list(single_session_combinations(m))
    assert len(combos) == len(set(combos)) == single_session_count(m) == sum(comb(m, i) for i in range(1, 6))
    assert all(1 <= len(c) <= 5 for c in combos)


@pytest.mark.parametrize(("m1", "m2"), [(1, 1), (1, 4), (3, 2), (5, 5), (6, 3), (2, 7)])
def test_two_session_enumeration_matches_the_formula(m1: int, m2: int) -> None:
    formula = sum(comb(m1 + m2, i) for i in range(2, 6))
    formula -= sum(comb(m1, i) for i in range(2, 6)) + sum(comb(m2, i) for i in range(2, 6))
    brute = [
        c for i in range(2, 6) for c in combinations(range(m1 + m2), i) if min(c) < m1 <= max(c)
    ]  # subsets of the union that touch both sessions
    combos = list(two_session_combinations(m1, m2))
    assert len(combos) == len(set(combos)) == len(brute) == two_session_count(m1, m2) == formula
    assert all(first and second and len(first) + len(second) <= 5 for first, second in combos)


def test_sampling_is_seeded_distinct_and_respects_the_two_session_share() -> None:
    combos = sample_combinations([COURSE], 10, 0.3, seed=7)
    assert combos == sample_combinations([COURSE], 10, 0.3, seed=7)
    assert combos != sample_combinations([COURSE], 10, 0.3, seed=8)
    assert len(combos) == len(set(combos)) == 10
    assert sum(len(c.positions) == 2 for c in combos) == 3
    for combo in combos:
        assert 1 <= len(combo.picks) <= 5 and combo.course == 0
        assert len(set(combo.picks)) == len(combo.picks)
    two = next(c for c in combos if len(c.positions) == 2)
    assert two.session_numbers(COURSE) == [1, 2] and len(two.concepts(COURSE)) >= 2


def test_sampling_exhausts_small_syllabi_without_repeats() -> None:
    one = glan.Course("D", "S", "l", (glan.CourseSession(1, "t", ("a", "b", "c")),))
    combos = sample_combinations([one], 50, 0.5, seed=0)  # no second session: all single-session
    assert len(combos) == single_session_count(3) == 7
    assert {tuple(c for _, c in combo.picks) for combo in combos} == set(single_session_combinations(3))


def test_sessions_without_concepts_are_never_sampled() -> None:
    course = glan.Course("D", "S", "l", (glan.CourseSession(1, "t", ()), glan.CourseSession(2, "u", ("x", "y"))))
    combos = sample_combinations([course], 10, 1.0, seed=0)
    assert len(combos) == 3 and all(c.positions == (1,) for c in combos)


# ---- prompts (pinned) -------------------------------------------------------------------------------------------


def test_subjects_prompt() -> None:
    assert glan.subjects_prompt("Probability", 2) == (
        "You are an education expert in Probability.\n"
        "List 2 subjects that students learn in Probability, from introductory to advanced. For each subject give "
        'its level (for example "middle school", "high school", "undergraduate" or "graduate") and 3 to 5 main '
        "subtopics.\n\n"
        "Reply with a JSON list only, in this form:\n"
        '[{"subject_name": "...", "level": "...", "subtopics": ["...", "..."]}]'
    )


def test_disciplines_prompt() -> None:
    assert glan.disciplines_prompt("Mathematics", 3) == (
        "You are an expert in Mathematics and in how it is taught.\n"
        "Break Mathematics down into about 3 sub-fields, and each sub-field into 2 to 4 disciplines that are taught "
        "as separate courses.\n\n"
        "Reply with a JSON list only, in this form:\n"
        '[{"sub_field": "...", "disciplines": ["...", "..."]}]'
    )


def test_syllabus_prompt() -> None:
    prompt = glan.syllabus_prompt("Probability", "Introduction to Probability", "high school", ["events"], 2, 3)
    assert prompt == (
        'You are an education expert in Probability. Design the syllabus of the high school course "Introduction to '
        'Probability", which covers: events.\n'
        "Split the course into 2 class sessions. For each session give a short title and 3 key concepts that the "
        "session teaches.\n\n"
        "Reply with JSON only, in this form:\n"
        '{"sessions": [{"title": "...", "key_concepts": ["...", "..."]}]}'
    )
    single = glan.syllabus_prompt("P", "S", "l", [], 1, 1)
    assert "which covers" not in single and "into 1 class session. " in single and "and 1 key concept that" in single
    assert "List 1 subject that" in glan.subjects_prompt("Probability", 1)


SYLLABUS_TEXT = (
    'You are the teacher of the high school course "Introduction to Probability" (Probability). The syllabus of the '
    "course:\n"
    "Session 1: Counting outcomes. Key concepts: sample space; equally likely outcomes; complement rule.\n"
    "Session 2: Combining events. Key concepts: independent events; multiplication rule; expected value.\n\n"
)
QUESTION_TAIL = (
    "The question must be self-contained, solvable from its own statement, and have exactly one short final "
    "answer: a number or a mathematical expression. Do not give the answer or a solution.\n\n"
    "Reply in this form:\nQUESTION: <the question>"
)


def test_question_prompt_holds_the_full_syllabus_and_the_chosen_concepts() -> None:
    assert glan.question_prompt(COURSE, ["sample space", "independent events"], [1, 2]) == (
        SYLLABUS_TEXT + "Write one homework question for sessions 1 and 2 that tests these key concepts:\n"
        "- sample space\n- independent events\n\n" + QUESTION_TAIL
    )
    assert glan.question_prompt(COURSE, ["complement rule"], [1]) == (
        SYLLABUS_TEXT + "Write one homework question for session 1 that tests this key concept:\n"
        "- complement rule\n\n" + QUESTION_TAIL
    )


def test_answer_and_conversion_prompts() -> None:
    assert glan.answer_prompt("Solve for x: 3x + 7 = 25.") == (
        "Solve for x: 3x + 7 = 25.\n\nSolve this question step by step, then give the final answer as "
        "\\boxed{<answer>}."
    )
    assert glan.to_json_prompt("1. Algebra (high school): equations", glan.SUBJECTS_FORMAT) == (
        "Convert the text below into JSON of exactly this form, keeping its content and adding nothing:\n"
        '[{"subject_name": "...", "level": "...", "subtopics": ["...", "..."]}]\n\n'
        "Reply with the JSON only.\n\nText:\n1. Algebra (high school): equations"
    )


# ---- parsers over recorded completions -----------------------------------------------------------------------------


def _rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def _outcome(kind: str, text: str, finish_reason: str) -> dict[str, object]:
    """What the parser for `kind` makes of `text`, in the shape `record_glan.py` stored after review."""
    try:
        if kind == "question":
            return {"ok": True, "question": glan.parse_question(text, finish_reason)}
        if kind == "answer":
            return {"ok": True, "answer": glan.parse_reference_answer(text)}
        parse = {"disciplines": glan.parse_disciplines, "syllabus": glan.parse_syllabus}.get(kind, glan.parse_subjects)
        parsed = parse(text)
    except ParseError as exc:
        return {"ok": False, "reason": exc.reason}
    items = [list(i) if isinstance(i, tuple) else getattr(i, "name", None) or i.title for i in parsed.items]
    return {"ok": True, "how": parsed.how, "items": items, "skipped": len(parsed.skipped)}


def test_fixture_covers_every_parser_with_real_parsed_and_truncated_replies() -> None:
    rows = _rows()
    real = [r for r in rows if r["origin"] == "real"]
    for kind in ("subjects", "syllabus", "question", "answer"):
        assert any(r["kind"] == kind and r["expected"]["ok"] for r in real), kind
        assert any(r["kind"] == kind and r["label"] == "truncated" and r["finish_reason"] == "length" for r in real)
    assert any(r["kind"] == "disciplines" for r in real) and any(r["kind"] == "to_json" for r in real)
    assert all(r["note"] for r in real), "every real completion was read and described"
    assert {"empty", "prose", "wrong_json"} <= {r["label"] for r in rows if r["origin"] == "crafted"}


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['id']}-{r['label']}")
def test_parser_gives_the_reviewed_outcome(row: dict) -> None:
    assert _outcome(row["kind"], row["completion"], row["finish_reason"]) == row["expected"]
