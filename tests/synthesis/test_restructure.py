"""CLPO/GHPO restructuring's pure parts (methods §13): pinned prompts, the CLPO classes and the variants they get,
GHPO hint prefixes, the answer-leak check and the rewrite parser over recorded real 0.5B completions and labelled
crafted ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from synthesis.restructure import (
    RestructureConfig,
    clean_solution,
    clpo_class,
    diversify_prompt,
    hint_kind,
    hint_prefix,
    hinted_question,
    parse_rewrite,
    reveals_answer,
    rewrite_request,
    same_problem,
    select_parents,
    simplify_prompt,
    variant_kinds,
)
from synthesis.structured import ParseError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "synthesis" / "restructure_completions.jsonl"
ROWS = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines() if line.strip()]
QUESTION = "A farmer has 12 cows and buys 3 times as many sheep. How many animals does he have now?"

PINNED_SIMPLIFY = f"""Rewrite the math problem below so that it is easier to understand: shorter, clearer, in your \
own words, with every implicit condition stated explicitly. Keep the same task and the same final answer. The final \
answer is 48; use it only to check that your rewrite keeps it, and do not write it in the problem. Keep the rewrite \
under 400 tokens.

PROBLEM:
{QUESTION}

Reply with only this JSON object:
{{"problem": "<the rewritten problem>"}}"""

PINNED_DIVERSIFY = f"""Rewrite the math problem below in different words: a semantically equivalent variant (other \
phrasing, other order of the given facts) that asks for exactly the same quantity and has exactly the same final \
answer. Do not solve it and do not add the answer.

PROBLEM:
{QUESTION}

Reply with only this JSON object:
{{"problem": "<the rewritten problem>"}}"""

PINNED_HINT = f"""{QUESTION}

The following text is the beginning of a solution to this problem; you may continue from it:
He buys 12 * 3 = 36 sheep."""


def test_prompts_are_pinned() -> None:
    assert simplify_prompt(QUESTION + "\n", " 48 ") == PINNED_SIMPLIFY
    assert diversify_prompt(QUESTION) == PINNED_DIVERSIFY
    assert hinted_question(QUESTION, "He buys 12 * 3 = 36 sheep.") == PINNED_HINT


def test_rewrite_request_is_seeded_and_capped_at_400_tokens() -> None:
    request = rewrite_request("prompt", RestructureConfig(seed=4))
    assert [m.role for m in request.messages] == ["user"]
    assert (request.sampling.max_tokens, request.sampling.seed, request.sampling.n) == (400, 4, 1)


@pytest.mark.parametrize(
    "rate,klass,kinds",
    [
        (0.0, "always_failed", ["simplified", "hint_25", "hint_50", "hint_75"]),
        (0.25, "hard", ["simplified"]),
        (0.3, "hard", ["simplified"]),
        (0.5, "medium", ["diversified"]),
        (0.7, "medium", ["diversified"]),
        (0.75, "easy", []),
        (1.0, "solved", []),
    ],
)
def test_clpo_classes_and_their_variants(rate: float, klass: str, kinds: list[str]) -> None:
    config = RestructureConfig()
    assert clpo_class(rate, config) == klass
    assert variant_kinds(rate, config) == kinds


def test_switches_turn_variants_off() -> None:
    config = RestructureConfig(simplify=False, diversify=False, hints=(0.5,))
    assert variant_kinds(0.0, config) == ["hint_50"]
    assert variant_kinds(0.2, config) == []
    assert variant_kinds(0.5, config) == []
    assert hint_kind(0.25) == "hint_25"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        RestructureConfig(hard_below=0.8, medium_below=0.5)
    with pytest.raises(ValidationError):
        RestructureConfig(hints=(0.5, 1.0))
    assert RestructureConfig().enabled is False


# --- GHPO hint prefixes -------------------------------------------------------------------------------------------

GSM8K_SOLUTION = "He buys 12*3 = <<12*3=36>>36 sheep.\nHe has 12+36 = <<12+36=48>>48 animals."


def test_hint_prefix_takes_a_share_of_the_characters() -> None:
    clean = clean_solution(GSM8K_SOLUTION)
    assert clean == "He buys 12*3 = 36 sheep.\nHe has 12+36 = 48 animals."
    assert len(clean) == 51  # prefixes of round(51 · share) = 13, 26 (Python rounds half to even), 38 characters
    assert hint_prefix(GSM8K_SOLUTION, 0.25) == clean[:13].rstrip() == "He buys 12*3"
    assert hint_prefix(GSM8K_SOLUTION, 0.5) == clean[:26] == "He buys 12*3 = 36 sheep.\nH"
    assert hint_prefix(GSM8K_SOLUTION, 0.75) == clean[:38].rstrip() == "He buys 12*3 = 36 sheep.\nHe has 12+36"


def test_hint_prefix_stops_before_the_boxed_answer() -> None:
    solution = "12 + 36 = 48, so \\boxed{48}"
    assert hint_prefix(solution, 0.75) == "12 + 36 = 48, so"
    assert hint_prefix("\\boxed{48} is the answer", 0.5) == ""


def test_hinted_question_grows_with_the_share() -> None:
    texts = [hinted_question(QUESTION, hint_prefix(GSM8K_SOLUTION, s)) for s in (0.25, 0.5, 0.75)]
    assert all(t.startswith(QUESTION) for t in texts)
    assert len(texts[0]) < len(texts[1]) < len(texts[2])


# --- leak check, identity, selection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant,parent,answer,leaks",
    [
        ("How many animals, given the total is 48?", QUESTION, "48", True),
        ("There are 48.", QUESTION, "48", True),
        ("A herd of 480 cows.", QUESTION, "48", False),
        ("Each weighs 3.48 tons.", QUESTION, "48", False),
        ("Buy 48 sheep; how many now?", "Buy 48 sheep; how many?", "48", False),  # the parent had it already
        ("What is x if 2x = 1/2?", "Solve 2x = 1/2.", "1/4", False),
        ("What is x if 2x = 1/2, i.e. 1/4?", "Solve 2x = 1/2.", "1/4", True),
    ],
)
def test_reveals_answer(variant: str, parent: str, answer: str, leaks: bool) -> None:
    assert reveals_answer(variant, parent, answer) is leaks


def test_same_problem_ignores_spacing_and_case() -> None:
    assert same_problem("What  is 2+2?", "what is 2+2?\n")
    assert not same_problem("What is 2+3?", "What is 2+2?")


def test_parent_choice_is_seeded_and_bounded() -> None:
    ids = [f"p{i}" for i in range(10)]
    chosen = select_parents(ids, 4, seed=2)
    assert len(chosen) == 4 and chosen == select_parents(list(reversed(ids)), 4, seed=2)
    assert select_parents(ids, 0, seed=2) == []
    assert select_parents(ids[:2], 4, seed=2) == ["p0", "p1"]


# --- the parser over recorded and crafted completions -------------------------------------------------------------


def test_fixture_has_recorded_and_crafted_cases() -> None:
    recorded = [r for r in ROWS if r["source"] == "recorded"]
    assert {(r["kind"], r["case"]) for r in recorded} >= {
        ("simplified", "valid"),
        ("simplified", "truncated"),
        ("diversified", "valid"),
        ("diversified", "truncated"),
    }
    assert {r["case"] for r in ROWS if r["source"] == "crafted"} >= {"empty", "wrong_json", "prose"}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['source']}-{r['case']}-{i}" for i, r in enumerate(ROWS)])
def test_parser_on_fixture(row: dict) -> None:
    expected = row["expected"]
    if expected["ok"]:
        assert parse_rewrite(row["completion"]) == expected["problem"]
        return
    with pytest.raises(ParseError) as caught:
        parse_rewrite(row["completion"])
    assert caught.value.reason == expected["reason"]
