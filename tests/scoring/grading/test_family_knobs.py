"""Slow: a higher difficulty knob is measurably harder for the real embedded 0.5B student, family by family."""

from __future__ import annotations

import pytest

from engines import Engine
from scoring.grading.rollouts import RolloutConfig, solve_request
from scoring.grading.verify import CheckItem, Verifier
from synthesis.families import FAMILIES

PER_LEVEL = 3
CONFIG = RolloutConfig(k=1, temperature=0.0, max_tokens=160, seed=0)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # ~4 min on 2 idle cores; model-bound, so 600 s is too tight when runs share them
def test_higher_knob_lowers_the_students_pass_rate(small_engine: Engine) -> None:
    solved: dict[str, dict[str, int]] = {}  # problems solved of PER_LEVEL, at the easiest and the hardest knob
    with Verifier() as verifier:
        for name in FAMILIES.names():
            family = FAMILIES.get(name)()
            easy, hard = min(family.difficulties), max(family.difficulties)
            problems = family.sample(seed=0, difficulties=[easy, hard], per_level=PER_LEVEL)
            groups = small_engine.generate([solve_request(p, CONFIG) for p in problems], progress=False)
            verdicts = verifier.check(
                [CheckItem(p.answer, g[0].text, p) for p, g in zip(problems, groups, strict=True)]
            )
            correct = [v.label == "correct" for v in verdicts]
            solved[name] = {"easy": sum(correct[:PER_LEVEL]), "hard": sum(correct[PER_LEVEL:])}
    table = "\n".join(
        f"{name:<20} easiest {r['easy']}/{PER_LEVEL}  hardest {r['hard']}/{PER_LEVEL}" for name, r in solved.items()
    )
    print(f"\nsolved by the 0.5B student, {PER_LEVEL} problems per knob, greedy:\n{table}")  # shown with -s
    # No family gets easier at its top knob (knob 5 for most, 6 for elementary). (Most families are 0 at both knobs
    # within 160 tokens — the 0.5B is cut off mid-solution — so this alone would pass on a student that solves
    # nothing; the spread below cannot.)
    assert all(r["easy"] >= r["hard"] for r in solved.values()), table
    # A real spread: strictly more solved at the easiest knobs in total, by more than one lucky answer, and a strict
    # drop in at least two families (observed: arithmetic 1 → 0 and word_problems 2 → 0 of 3).
    assert sum(r["easy"] for r in solved.values()) >= sum(r["hard"] for r in solved.values()) + 2, table
    assert sum(r["easy"] > r["hard"] for r in solved.values()) >= 2, table
