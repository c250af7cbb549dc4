"""Imports of three public schema shapes by mapping alone (issue 25): a question built from two columns (SVAMP),
a list-valued answer (OlympiadBench, MAWPS), an answer with a unit (ASDiv). The rows are written here in each
dataset's published schema, not copied from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engines.errors import ConfigError
from synthesis.import_mapping import strip_unit
from synthesis.importers import import_dataset, mapping_for


def _metadata(problem: object) -> dict:
    return json.loads(problem.metadata)  # type: ignore[attr-defined]


def test_svamp_question_from_body_and_question_columns(tmp_path: Path) -> None:
    """SVAMP (arkilpatel/SVAMP, SVAMP.json): ID, Body, Question, Equation, Answer (a float), Type."""
    rows = [
        {"ID": "chal-1", "Body": "Tom had 8 marbles and lost 3", "Question": "How many are left?",
         "Equation": "( 8.0 - 3.0 )", "Answer": 5.0, "Type": "Subtraction"},
        {"ID": "chal-2", "Body": "A box holds 6 pens", "Question": "  ", "Equation": "", "Answer": 6.0,
         "Type": "Common-Division"},
        {"ID": "chal-3", "Body": "Ann reads 4 pages a day for 7 days", "Question": "How many pages does she read?",
         "Equation": "( 4.0 * 7.0 )", "Answer": 28.0, "Type": "Multiplication"},
    ]  # fmt: skip
    path = tmp_path / "SVAMP.json"
    path.write_text(json.dumps(rows))
    mapping = mapping_for(
        None, {"question": "{Body}. {Question}", "answer": "Answer", "answer_rule": "column", "id_field": "ID"}
    )
    result = import_dataset(path, source="svamp", mapping=mapping)
    assert [(p.question, p.answer) for p in result.problems] == [
        ("Tom had 8 marbles and lost 3. How many are left?", "5.0"),
        ("Ann reads 4 pages a day for 7 days. How many pages does she read?", "28.0"),
    ]
    assert _metadata(result.problems[1]) == {"original_id": "chal-3"}
    assert [(r.input_ref, r.reason) for r in result.rejects] == [
        ("SVAMP.json:2", "field 'Question' (in the question template) is empty")
    ]


def test_a_template_naming_a_missing_column_or_more_than_a_column_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "svamp.jsonl"
    path.write_text(json.dumps({"Body": "Tom had 8 marbles and lost 3", "Question": "How many?", "Answer": 5}) + "\n")
    with pytest.raises(ConfigError, match=r"no column 'Qestion' for the mapped field 'question'.*did you mean"):
        import_dataset(
            path, source="s", mapping=mapping_for(None, {"question": "{Body} {Qestion}", "answer": "Answer"})
        )
    for template in ("{Body.__class__}", "{Body[0]}", "{Body!r}", "{Body:>9}", "{}", "{Body"):
        with pytest.raises(ConfigError, match="question template"):
            mapping_for(None, {"question": template})
    literal = mapping_for(
        None, {"question": "{{note}} {Body}: {Question}", "answer": "Answer", "answer_rule": "column"}
    )
    assert import_dataset(path, source="s", mapping=literal).problems[0].question.startswith("{note} Tom had 8")


def test_list_valued_answers_follow_the_list_rule(tmp_path: Path) -> None:
    """OlympiadBench stores `final_answer` as a list of strings; MAWPS `lSolutions` as a list of floats."""
    path = tmp_path / "olympiad.parquet"
    questions = ["Find the least n.", "Solve x^2 = 4.", "Name the smallest prime.", "Pick none."]
    pq.write_table(pa.table({"question": questions, "final_answer": [["$7$"], ["$-2$", "$2$"], ["$2$"], []]}), path)
    only = import_dataset(
        path, source="o", mapping=mapping_for(None, {"answer": "final_answer", "answer_rule": "column"})
    )
    assert [p.answer for p in only.problems] == ["$7$", "$2$"]
    assert _metadata(only.problems[0]) == {"raw_answer": '["$7$"]'}
    reasons = {r.input_ref: r.reason for r in only.rejects}
    assert reasons["olympiad.parquet:2"].startswith("field 'final_answer' holds 2 answers")
    assert "list_answer to 'first' or 'join'" in reasons["olympiad.parquet:2"]
    assert reasons["olympiad.parquet:4"] == "field 'final_answer' is an empty list"

    def answers(rule: str) -> list[str]:
        mapping = mapping_for(None, {"answer": "final_answer", "answer_rule": "column", "list_answer": rule})
        return [p.answer for p in import_dataset(path, source="o", mapping=mapping).problems]

    assert answers("join") == ["$7$", "$-2$, $2$", "$2$"]
    assert answers("first") == ["$7$", "$-2$", "$2$"]

    mawps = tmp_path / "mawps.parquet"
    pq.write_table(pa.table({"sQuestion": ["Joan had 70 shells and has 27 left. How many did she give?"],
                             "lSolutions": [[43.0]]}), mawps)  # fmt: skip
    mapping = mapping_for(None, {"question": "sQuestion", "answer": "lSolutions", "answer_rule": "column"})
    assert [p.answer for p in import_dataset(mawps, source="m", mapping=mapping).problems] == ["43.0"]
    with pytest.raises(ConfigError, match="unknown list_answer 'joined'; did you mean 'join'"):
        mapping_for(None, {"list_answer": "joined"})


def test_a_json_list_of_strings_in_a_csv_cell_is_a_list_but_an_interval_is_not(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerows([["q", "a"], ["How many apples?", '["2"]'], ["Where is f positive?", "[1, 2]"]])
    result = import_dataset(
        path, source="c", mapping=mapping_for(None, {"question": "q", "answer": "a", "answer_rule": "column"})
    )
    assert [p.answer for p in result.problems] == ["2", "[1, 2]"]
    assert _metadata(result.problems[0]) == {"raw_answer": '["2"]'} and _metadata(result.problems[1]) == {}


def test_asdiv_answers_lose_their_unit_and_keep_it_in_metadata(tmp_path: Path) -> None:
    """ASDiv (chaochun/nlu-asdiv-dataset): Body, Question, Solution-Type, Answer like `9 (apples)`, Formula."""
    rows = [
        {"Body": "Seven apples were in a bowl and Sam added two.", "Question": "How many apples are there?",
         "Answer": "9 (apples)"},
        {"Body": "A ribbon is 20 cm long; 8 cm are cut off.", "Question": "How long is it now?", "Answer": "12 cm"},
        {"Body": "A circle has radius 1.", "Question": "What is its area?", "Answer": "3 pi"},
        {"Body": "Seven days pass.", "Question": "What weekday residue is 12?", "Answer": "5 (mod 7)"},
    ]  # fmt: skip
    path = tmp_path / "asdiv.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    overrides = {"question": "{Body} {Question}", "answer": "Answer", "answer_rule": "column"}
    result = import_dataset(path, source="asdiv", mapping=mapping_for(None, overrides))
    assert [p.answer for p in result.problems] == ["9", "12", "3 pi", "5 (mod 7)"]
    assert [_metadata(p).get("raw_answer") for p in result.problems] == ["9 (apples)", "12 cm", None, None]
    kept = import_dataset(path, source="asdiv", mapping=mapping_for(None, {**overrides, "answer_unit": "keep"}))
    assert [p.answer for p in kept.problems] == [row["Answer"] for row in rows]


@pytest.mark.parametrize(
    ("answer", "bare"),
    [
        ("9 (apples)", "9"),
        ("12 cm", "12"),
        ("-3.5 km/h", "-3.5"),
        ("1,200 dollars", "1,200"),
        ("3/4 cup", "3/4"),
        ("10 cm^2", "10"),
        ("10 m^2", "10 m^2"),
        ("3 pi", "3 pi"),
        ("2 sqrt 3", "2 sqrt 3"),
        ("5 i", "5 i"),
        ("4x", "4x"),
        ("5r^5", "5r^5"),
        ("5 r^2", "5 r^2"),
        ("2 or 3", "2 or 3"),
        ("5 (mod 7)", "5 (mod 7)"),
        ("\\frac{1}{2}", "\\frac{1}{2}"),
        ("5\\text{ cm}", "5\\text{ cm}"),
        ("25%", "25%"),
        ("(1, 2)", "(1, 2)"),
    ],
)
def test_strip_unit_cuts_only_words_after_a_number(answer: str, bare: str) -> None:
    assert strip_unit(answer) == bare


def test_math500_answers_are_unchanged_by_the_unit_rule(shared_dir: Path) -> None:
    path = shared_dir / "data" / "math" / "math500_test.jsonl"
    answers = [json.loads(line)["answer"].strip() for line in path.read_text().splitlines()]
    assert any(" " in a for a in answers)  # answers with spaces and words exist, and stay
    assert [strip_unit(a) for a in answers] == answers
