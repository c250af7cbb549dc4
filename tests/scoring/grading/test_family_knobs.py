"""Slow: a higher difficulty knob is measurably harder for the real embedded 0.5B student, family by family."""

from __future__ import annotations

import pytest

from engines import Engine
from scoring.grading.rollouts import RolloutConfig, solve_request
from scoring.grading.verify import CheckItem, Verifier
from synthesis.families import FAMILIES

PER_LEVEL = 3
# The default run's answer-only prompt: a bare answer in a few tokens, so the whole test is one batch of prompt
# evaluations (~30 s). With step-by-step solutions in 160 tokens it took ~3 min and the 0.5B was cut off mid-solution
# on most families at both knobs.
CONFIG = RolloutConfig(k=1, temperature=0.0, max_tokens=24, seed=0, prompt="answer_only_v2")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # model-bound: 600 s is too tight when other runs share the cores
def test_higher_knob_lowers_the_students_pass_rate(small_engine: Engine) -> None:
    problems, spans = [], {}
    for name in FAMILIES.names():
        family = FAMILIES.get(name)()
        easy, hard = min(family.difficulties), max(family.difficulties)
        sampled = family.sample(seed=0, difficulties=[easy, hard], per_level=PER_LEVEL)
        spans[name] = slice(len(problems), len(problems) + len(sampled))
        problems += sampled
    groups = small_engine.generate([solve_request(p, CONFIG) for p in problems], progress=False)
    with Verifier() as verifier:
        verdicts = verifier.check([CheckItem(p.answer, g[0].text, p) for p, g in zip(problems, groups, strict=True)])
    solved: dict[str, dict[str, int]] = {}  # problems solved of PER_LEVEL, at the easiest and the hardest knob
    for name, span in spans.items():
        correct = [v.label == "correct" for v in verdicts[span]]
        solved[name] = {"easy": sum(correct[:PER_LEVEL]), "hard": sum(correct[PER_LEVEL:])}
    table = "\n".join(
        f"{name:<20} easiest {r['easy']}/{PER_LEVEL}  hardest {r['hard']}/{PER_LEVEL}" for name, r in solved.items()
    )
    print(f"\nsolved by the 0.5B student, {PER_LEVEL} problems per knob, greedy:\n{table}")  # shown with -s
    # No family gets easier at its top knob (knob 5 for most, 6 for elementary). (Several families are 0 at both
    # knobs for the 0.5B, so this alone would pass on a student that solves nothing; the spread below cannot.)
    assert all(r["easy"] >= r["hard"] for r in solved.values()), table
    # A real spread: strictly more solved at the easiest knobs in total, by more than one lucky answer, and a strict
    # drop in at least two families (observed: arithmetic 3 → 0, elementary 3 → 2, fractions and sequences 1 → 0).
    assert sum(r["easy"] for r in solved.values()) >= sum(r["hard"] for r in solved.values()) + 2, table
    assert sum(r["easy"] > r["hard"] for r in solved.values()) >= 2, table
