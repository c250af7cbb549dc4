"""`synthesis/structured.py`: JSON out of untrusted model text, bounded, with reasons on failure."""

from __future__ import annotations

import pytest

from synthesis.structured import (
    MAX_TEXT_CHARS,
    ParseError,
    extract_json,
    field_text,
    heading_section,
)


def test_bare_and_fenced_json_are_found() -> None:
    assert extract_json('{"question": "What is 2+2?", "answer": 4}') == {"question": "What is 2+2?", "answer": 4}
    fenced = 'Sure! Here it is:\n```json\n{"question": "Q", "answer": "7"}\n```\nHope this helps.'
    assert extract_json(fenced) == {"question": "Q", "answer": "7"}


def test_json_inside_prose_with_braces_in_strings() -> None:
    text = 'The problem {as asked} is: {"question": "Find x if {x} = 3", "answer": "3"} done.'
    assert extract_json(text) == {"question": "Find x if {x} = 3", "answer": "3"}


def test_list_expectation_skips_objects() -> None:
    assert extract_json('note {"a": 1} then ["x", "y"]', expect=list) == ["x", "y"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty completion"),
        ("   \n", "empty completion"),
        ('{"question": "What is 2+', "no complete JSON dict (truncated or malformed)"),
        ("{'question': 'single quotes'}", "no complete JSON dict (truncated or malformed)"),
        ("The answer is 42, no JSON here.", "no JSON dict in the completion (prose instead of JSON)"),
        ('["a list", "not an object"]', "no JSON dict in the completion (prose instead of JSON)"),
    ],
)
def test_unparseable_text_raises_with_reason(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        extract_json(text)
    assert caught.value.reason == reason


def test_huge_completion_is_refused_before_scanning() -> None:
    with pytest.raises(ParseError, match="longer than"):
        extract_json("{" * (MAX_TEXT_CHARS + 1))


def test_deeply_nested_json_is_bounded() -> None:
    # A recursion bomb: json.loads would hit the recursion limit; the span limit refuses it first.
    with pytest.raises(ParseError):
        extract_json("[" * 30_000 + "]" * 30_000, expect=list)


def test_field_text_accepts_numbers_and_rejects_wrong_types() -> None:
    obj = {"answer": 12, "question": "  Q?  ", "empty": " ", "list": [1], "flag": True}
    assert field_text(obj, "answer") == "12"
    assert field_text(obj, "question") == "Q?"
    assert field_text(obj, "missing", required=False) is None
    for key, reason in [("missing", "missing field"), ("empty", "empty field"), ("list", "not text")]:
        with pytest.raises(ParseError, match=reason):
            field_text(obj, key)
    with pytest.raises(ParseError, match="missing field"):
        field_text(obj, "flag")  # a boolean is not an answer
    with pytest.raises(ParseError, match="longer than 1 characters"):
        field_text(obj, "question", max_chars=1)


def test_heading_section_takes_the_last_heading_up_to_the_next() -> None:
    text = "CREATED: draft question\nVERIFICATION: fine\nFINAL: What is 3 * 7?\nNOTES: none"
    assert heading_section(text, "FINAL") == "What is 3 * 7?"
    assert heading_section("**Final:** 12 apples", "FINAL") == "12 apples"
    assert heading_section("no headings at all", "FINAL") is None
