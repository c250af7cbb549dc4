"""Slow: a higher difficulty knob is measurably harder for the real embedded 0.5B student, family by family."""

from __future__ import annotations

import pytest

from engines import Engine
from scoring.rollouts import RolloutConfig, solve_request
from scoring.verify import CheckItem, Verifier
from synthesis.families import FAMILIES

PER_LEVEL = 3
CONFIG = RolloutConfig(k=1, temperature=0.0, max_tokens=160, seed=0)


@pytest.mark.slow
def test_higher_knob_lowers_the_students_pass_rate(small_engine: Engine) -> None:
    rates: dict[str, dict[int, float]] = {}
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
            rates[name] = {easy: sum(correct[:PER_LEVEL]) / PER_LEVEL, hard: sum(correct[PER_LEVEL:]) / PER_LEVEL}
    table = "\n".join(f"{name:<20} knob1 {r[1]:.2f}  knob5 {r[5]:.2f}" for name, r in rates.items())
    print(f"\npass rate of the 0.5B student, {PER_LEVEL} problems per knob, greedy:\n{table}")  # shown with -s
    assert all(r[1] >= r[5] for r in rates.values()), table
    assert sum(r[1] for r in rates.values()) > sum(r[5] for r in rates.values()), table
