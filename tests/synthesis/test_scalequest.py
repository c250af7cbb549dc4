"""ScaleQuest's pure parts (methods §8): the exact prompts, the question and verdict parsers over recorded real
0.5B completions (`tests/fixtures/record_scalequest.py`) plus crafted ones (labelled so in the fixture), the
language/format filter, best-of-n and the seeded difficulty-sampling draw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines import Message
from engines.base import CHATML_TEMPLATE, open_turn_prompt
from engines.openai_compat import compile_chat_template
from synthesis.prompting import prompt_version
from synthesis.scalequest import (
    QUESTION_SYSTEM,
    SOLVABILITY,
    ScaleQuestConfig,
    drops_easy,
    language_filter,
    parse_question,
    parse_verdict,
    pick_response,
    question_prompt_version,
    question_request,
    solvability_request,
)
from synthesis.structured import ParseError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "synthesis" / "scalequest_completions.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]
SYSTEM_LINE = (
    "You are a helpful math teacher. The user sends you one self-contained math word problem that asks for a "
    "single numeric answer."
)


def _ids(rows: list[dict]) -> list[str]:
    return [f"{r['kind']}-{i}-{r['origin'].split(':')[0]}" for i, r in enumerate(rows)]


# --- prompts, pinned -----------------------------------------------------------------------------------------------


def test_question_request_is_the_open_user_turn_after_the_system_line() -> None:
    config = ScaleQuestConfig(questions=5, max_question_tokens=80, seed=3)
    request = question_request(config)
    assert request.messages == (Message("system", SYSTEM_LINE), Message("user", "", open=True))
    sampling = request.sampling
    assert (sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.n, sampling.seed) == (
        1.0,
        0.99,
        80,
        5,
        3,
    )
    # The raw prompt the generator sees under ChatML (Qwen): system line, then the user header, nothing else.
    chatml = compile_chat_template(CHATML_TEMPLATE)
    prompt = open_turn_prompt(request.messages, lambda m: chatml.render(messages=m, add_generation_prompt=False))
    assert prompt.text == f"<|im_start|>system\n{SYSTEM_LINE}<|im_end|>\n<|im_start|>user\n"
    assert question_prompt_version(config) == prompt_version(QUESTION_SYSTEM)


def test_a_configured_system_line_replaces_the_template_and_gets_its_own_version() -> None:
    config = ScaleQuestConfig(system_prompt="You are a helpful assistant.")  # the paper's, for a QFT generator
    assert question_request(config).messages[0] == Message("system", "You are a helpful assistant.")
    assert question_prompt_version(config).startswith("custom@")


def test_solvability_prompt_is_pinned() -> None:
    request = solvability_request(
        "A train travels 60 km in 1.5 hours. What is its average speed in km/h?", ScaleQuestConfig()
    )
    assert request.messages == (
        Message(
            "user",
            "Please check a math problem before it is used to train students. Decide two things:\n"
            "1. Is it a math problem?\n"
            "2. Can it be solved from the conditions it states alone, with one definite answer? You may try to solve "
            "it first.\n"
            "\n"
            "Problem:\n"
            "A train travels 60 km in 1.5 hours. What is its average speed in km/h?\n"
            "\n"
            "Reason briefly, step by step. Then end with one last line that is exactly "
            '"Verdict: Yes" or "Verdict: No".',
        ),
    )
    assert request.sampling.temperature == 0.0 and request.sampling.n == 1 and request.sampling.max_tokens == 192


# --- parsers over recorded completions ------------------------------------------------------------------------------


def test_the_fixture_holds_real_and_crafted_rows_of_both_kinds() -> None:
    kinds = {(r["kind"], r["origin"].split(":")[0]) for r in ROWS}
    assert kinds == {("question", "real"), ("question", "crafted"), ("verdict", "real"), ("verdict", "crafted")}
    assert any(r["finish_reason"] == "length" for r in ROWS if r["origin"].startswith("real")), "truncated cases"
    versions = {r["prompt_version"] for r in ROWS if r["origin"].startswith("real")}
    assert versions <= {prompt_version(QUESTION_SYSTEM), prompt_version(SOLVABILITY)}, "re-record after a prompt edit"


QUESTIONS = [r for r in ROWS if r["kind"] == "question"]
VERDICTS = [r for r in ROWS if r["kind"] == "verdict"]


@pytest.mark.parametrize("row", QUESTIONS, ids=_ids(QUESTIONS))
def test_question_parser_and_filter_on_recorded_completions(row: dict) -> None:
    expected = row["expected"]
    truncated = row["finish_reason"] == "length"
    if expected["question"] is None:
        with pytest.raises(ParseError) as caught:
            parse_question(row["completion"], truncated=truncated)
        assert caught.value.reason == expected["reject"]
        return
    parsed = parse_question(row["completion"], truncated=truncated)
    assert parsed.text == expected["question"]
    assert language_filter(parsed.text) == expected["reject"]


@pytest.mark.parametrize("row", VERDICTS, ids=_ids(VERDICTS))
def test_verdict_parser_on_recorded_completions(row: dict) -> None:
    expected = row["expected"]
    truncated = row["finish_reason"] == "length"
    if expected["verdict"] is None:
        with pytest.raises(ParseError) as caught:
            parse_verdict(row["completion"], truncated=truncated)
        assert caught.value.reason == expected["reject"]
    else:
        assert parse_verdict(row["completion"], truncated=truncated) is expected["verdict"]


# --- the parsers' rules, one case each ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "truncated", "question", "trimmed"),
    [
        (
            "How many apples are left if Tom eats 3 of 10?",
            False,
            "How many apples are left if Tom eats 3 of 10?",
            False,
        ),
        ("# Problem 4: Find x if 2x = 10.\n\nTo solve this, divide by 2.", True, "Find x if 2x = 10.", True),
        ("**Question**\nWhat is 15% of 80?\n1. Let's compute 0.15 * 80", True, "What is 15% of 80?", True),
        (
            "A box holds 12 eggs.\n# How many boxes hold 60 eggs?\nStep 1: divide",
            False,
            "A box holds 12 eggs.\nHow many boxes hold 60 eggs?",
            True,
        ),
    ],
)
def test_parse_question_strips_labels_and_cuts_a_self_answer(
    text: str, truncated: bool, question: str, trimmed: bool
) -> None:
    parsed = parse_question(text, truncated=truncated)
    assert (parsed.text, parsed.trimmed_answer) == (question, trimmed)


@pytest.mark.parametrize(
    ("text", "truncated", "reason"),
    [
        ("", False, "empty completion"),
        ("## Question 2\n", False, "only a heading or label, no question"),
        ("Sure! Let me think of one.", False, "starts answering before asking a question"),
        ("A farmer has 12 cows and buys", True, "cut at max tokens before the question ended"),
    ],
)
def test_parse_question_rejects_with_a_reason(text: str, truncated: bool, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_question(text, truncated=truncated)


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("What is 3 + 4 multiplied by 2?", None),
        ("Compute the area of a 3 by 4 rectangle.", None),
        ("Calcule 3 × 4 pour la classe.", "non-ASCII character U+00D7 (the paper keeps ASCII-only questions)"),
        ("What is 2+2?", "too short (12 < 20 characters)"),
        ("What is " + "1 + " * 400 + "1?", "too long (1610 > 1500 characters)"),
        ("import math\nprint(math.sqrt(16)) # what is it?", "looks like code, not a math question"),
        ("What is 6 times 7? The answer is 42.", "states a solution or answer"),
        ("What is 6 times 7? \\boxed{42}", "states a solution or answer"),
        (
            "A school has 30 classes with 25 students each.",
            "asks nothing (no '?' and no task such as find, compute or solve)",
        ),
        ("Class 5 has 30 students and 12 are girls. How many are boys?", None),
    ],
)
def test_language_filter(question: str, reason: str | None) -> None:
    assert language_filter(question) == reason


@pytest.mark.parametrize(
    ("text", "truncated", "verdict"),
    [
        ("It is solvable.\nVerdict: Yes", False, True),
        ("Verdict: **No**\n\nThe data is missing.", False, False),  # the explicit line wins over what follows
        ("The rate is given.\n\n**Yes**", False, True),
        ('{"solvable": false}', True, False),  # JSON is a verdict even when the reply was cut after it
        ("Yes, it is a math problem. The speed is", True, True),  # the verdict first, then the cut reasons
        ("**No.** The second train has no speed.", False, False),
    ],
)
def test_parse_verdict_rules(text: str, truncated: bool, verdict: bool) -> None:
    assert parse_verdict(text, truncated=truncated) is verdict


@pytest.mark.parametrize("text", ["Let us check. The problem is not a yes", "No information is missing, so"])
def test_parse_verdict_refuses_a_truncated_reply_without_an_explicit_verdict(text: str) -> None:
    with pytest.raises(ParseError, match="cut at max tokens before a verdict"):
        parse_verdict(text, truncated=True)


# --- best-of-n and difficulty sampling ------------------------------------------------------------------------------


def test_pick_response_prefers_finished_then_short_then_early() -> None:
    assert pick_response([0, 2, 3], [False, True, True, True], [50, 90, 120, 120]) == 2
    assert pick_response([0, 1], [False, False], [90, 60]) == 1
    assert pick_response([3, 1], [True, True, True, True], [5, 40, 5, 40]) == 1
    with pytest.raises(ValueError):
        pick_response([], [], [])


def test_drops_easy_is_a_seeded_per_item_draw_at_the_share() -> None:
    ids = [f"q{i:05d}" for i in range(2000)]
    assert not any(drops_easy(i, 0.0, 0) for i in ids) and all(drops_easy(i, 1.0, 0) for i in ids)
    half = [drops_easy(i, 0.5, 7) for i in ids]
    assert half == [drops_easy(i, 0.5, 7) for i in ids], "same seed, same draws"
    assert 900 < sum(half) < 1100
    assert half != [drops_easy(i, 0.5, 8) for i in ids], "another seed, other draws"
    # Each item's draw ignores the rest of the run: a smaller run makes the same decisions for its items.
    assert [drops_easy(i, 0.5, 7) for i in ids[:10]] == half[:10]
