"""Socratic-Zero's pure parts (methods §10): the pinned refiner prompt, the reply parser over recorded real 0.5B
completions and labelled crafted ones, the utility and keep rule, the zones, and the seeded choices."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from synthesis.socratic import (
    FailedAttempt,
    SocraticConfig,
    clean_answer,
    extract_latex_json,
    keep_decision,
    parse_refinement,
    pick_failures,
    refine_prompt,
    refine_request,
    replay_count,
    select_replay,
    select_seeds,
    shorten_attempt,
    utility,
    zone,
)
from synthesis.structured import ParseError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "synthesis" / "socratic_completions.jsonl"
ROWS = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines() if line.strip()]

PINNED_PROMPT = """You are a math teacher. A student attempted the problem below and got it wrong.

PROBLEM:
Tom has 3 boxes of 12 pens. He gives away 5 pens. How many pens are left?

STUDENT'S ATTEMPT (wrong):
3 boxes of 12 pens is 3 + 12 = 15 pens. 15 - 5 = 10. The answer is \\boxed{10}.

Write ONE new problem that trains exactly the skill the student got wrong: keep the same idea, but make the step \
where the attempt went wrong explicit, so a student who works carefully can solve it. Do not copy the problem above: \
use new numbers or a new situation. The new problem must have a single final answer (a number or a short \
expression). Then solve it.

Reply with only this JSON object:
{"problem": "<the new problem>", "solution": "<a short step-by-step solution>", "answer": "<the final answer only>"}"""


def test_refine_prompt_is_pinned() -> None:
    prompt = refine_prompt(
        " Tom has 3 boxes of 12 pens. He gives away 5 pens. How many pens are left?\n",
        "3 boxes of 12 pens is 3 + 12 = 15 pens. 15 - 5 = 10. The answer is \\boxed{10}.\n",
    )
    assert prompt == PINNED_PROMPT


def test_refine_request_is_one_seeded_user_message() -> None:
    config = SocraticConfig(refine_temperature=0.5, refine_max_tokens=300, seed=7)
    request = refine_request("What is 2 + 2?", "5", config)
    assert [m.role for m in request.messages] == ["user"]
    assert request.messages[0].content == refine_prompt("What is 2 + 2?", "5")
    sampling = request.sampling
    assert (sampling.temperature, sampling.max_tokens, sampling.n, sampling.seed) == (0.5, 300, 1, 7)


def test_long_attempts_keep_head_and_tail() -> None:
    attempt = "first line " + "x" * 3000 + " final answer 42"
    short = shorten_attempt(attempt, 200)
    assert len(short) <= 200
    assert short.startswith("first line") and short.endswith("final answer 42") and "[…]" in short
    assert shorten_attempt("  short  ", 200) == "short"


# --- the parser over recorded and crafted completions -------------------------------------------------------------


def test_fixture_has_recorded_and_crafted_cases() -> None:
    recorded = [r for r in ROWS if r["source"] == "recorded"]
    assert {r["case"] for r in recorded} >= {"valid", "truncated"}
    assert all(r["finish_reason"] == "length" for r in recorded if r["case"] == "truncated")
    assert {r["case"] for r in ROWS if r["source"] == "crafted"} >= {"empty", "wrong_json", "prose"}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['source']}-{r['case']}-{i}" for i, r in enumerate(ROWS)])
def test_parser_on_fixture(row: dict) -> None:
    expected = row["expected"]
    if not expected["ok"]:
        with pytest.raises(ParseError) as caught:
            parse_refinement(row["completion"])
        assert caught.value.reason == expected["reason"]
        return
    refined = parse_refinement(row["completion"])
    assert refined.question == expected["question"]
    assert refined.solution == expected["solution"]
    assert refined.answer == expected["answer"]


def test_latex_inside_json_survives() -> None:
    text = r'{"problem": "Compute \frac{1}{2} + \(x\) when x = \sqrt{4}", "answer": "\boxed{2.5}"}'
    obj = extract_latex_json(text)
    assert obj["problem"] == r"Compute \frac{1}{2} + \(x\) when x = \sqrt{4}"
    assert parse_refinement(text).answer == "2.5"


@pytest.mark.parametrize(
    "raw,solution,expected",
    [
        ("$7$.", None, "7"),
        ("The answer is \\boxed{12}.", None, "12"),
        (None, "so she has \\boxed{18} apples", "18"),
        (" 3.5 ", None, "3.5"),
    ],
)
def test_clean_answer(raw: str | None, solution: str | None, expected: str) -> None:
    assert clean_answer(raw, solution) == expected


@pytest.mark.parametrize(
    "raw,reason", [(None, "no final answer in the reply"), ("x" * 101, "final answer longer than 100 characters")]
)
def test_clean_answer_rejects(raw: str | None, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        clean_answer(raw)
    assert caught.value.reason == reason


# --- utility, keep rule, zones ------------------------------------------------------------------------------------


def test_utility_is_the_papers_gaussian() -> None:
    assert utility(0.5) == 1.0
    assert utility(0.3) == pytest.approx(math.exp(-0.5))
    assert utility(0.7) == pytest.approx(utility(0.3))
    assert utility(0.0) == pytest.approx(math.exp(-0.25 / 0.08))
    assert utility(0.2, mu=0.2, sigma=0.1) == 1.0


def test_gaussian_keep_rule() -> None:
    config = SocraticConfig(min_utility=0.3)
    # U(0.25) = exp(-0.78125) ≈ 0.458 is kept; U(0.125) = exp(-1.7578) ≈ 0.172 is not.
    assert keep_decision(0.25, config).kept
    rejected = keep_decision(0.125, config)
    assert not rejected.kept and rejected.reason == "utility below 0.3 (learning)"
    assert keep_decision(1.0, config).reason == "utility below 0.3 (mastered)"
    assert keep_decision(0.0, config).reason == "utility below 0.3 (too_difficult)"
    assert keep_decision(0.0, SocraticConfig(min_utility=0.0)).kept


def test_band_keep_rule_has_open_ends() -> None:
    config = SocraticConfig(keep="band", band=(0.25, 0.75))
    assert [keep_decision(s, config).kept for s in (0.25, 0.5, 0.75)] == [False, True, False]
    assert keep_decision(0.75, config).reason == "pass rate outside (0.25, 0.75) (learning)"
    assert keep_decision(0.5, config).utility == 1.0


def test_zones() -> None:
    assert [zone(s) for s in (0.0, 0.125, 0.875, 1.0)] == ["too_difficult", "learning", "learning", "mastered"]


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        SocraticConfig(band=(0.6, 0.4))
    with pytest.raises(ValidationError):
        SocraticConfig(keep="median")  # type: ignore[arg-type]
    assert SocraticConfig().enabled is False


# --- seeded choices -----------------------------------------------------------------------------------------------


def _failures() -> list[FailedAttempt]:
    return [FailedAttempt(p, i, f"attempt {p}{i}", "wrong") for p in ("a", "b", "c") for i in range(3)]


def test_failures_spread_over_problems_first() -> None:
    picked = pick_failures(_failures(), 4, seed=0, round_no=1)
    assert len(picked) == 4
    assert {f.problem_id for f in picked[:3]} == {"a", "b", "c"}, "one per problem before any second"
    assert len({f.failure_id for f in picked}) == 4
    assert len(pick_failures(_failures(), 50, seed=0, round_no=1)) == 9


def test_failure_choice_is_seeded_and_order_free() -> None:
    failures = _failures()
    first = pick_failures(failures, 5, seed=3, round_no=2)
    assert pick_failures(list(reversed(failures)), 5, seed=3, round_no=2) == first
    others = {tuple(f.failure_id for f in pick_failures(failures, 5, seed=s, round_no=2)) for s in range(8)}
    assert len(others) > 1, "the seed changes the choice"


def test_replay_share_and_determinism() -> None:
    history = [f"p{i}" for i in range(6)]
    assert [replay_count(6, s) for s in (0.0, 0.25, 0.5, 1.0)] == [0, 2, 3, 6]
    chosen = select_replay(history, 0.25, seed=0, round_no=2)
    assert len(chosen) == 2 and set(chosen) <= set(history) and chosen == sorted(chosen)
    assert select_replay(list(reversed(history)), 0.25, seed=0, round_no=2) == chosen
    assert select_replay(history, 0.0, seed=0, round_no=2) == []
    assert select_replay(history, 1.0, seed=0, round_no=2) == sorted(history)
    rounds = {tuple(select_replay(history, 0.5, seed=0, round_no=r)) for r in range(2, 10)}
    assert len(rounds) > 1, "each round replays its own sample"


def test_seed_choice_is_seeded_and_bounded() -> None:
    ids = [f"q{i}" for i in range(20)]
    seeds = select_seeds(ids, 6, seed=1)
    assert len(seeds) == 6 and seeds == select_seeds(list(reversed(ids)), 6, seed=1)
    assert select_seeds(ids[:3], 6, seed=1) == sorted(ids[:3])
