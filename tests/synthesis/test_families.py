"""Contract test over the whole family registry, plus the arithmetic family's knob."""

from __future__ import annotations

import pytest

from engines.errors import ConfigError
from synthesis.families import FAMILIES, Family, item_rng
from synthesis.registry import Registry


@pytest.mark.parametrize("name", FAMILIES.names())
def test_family_contract(name: str) -> None:
    family = FAMILIES.get(name)()
    problems = family.sample(seed=3, difficulties=family.difficulties, per_level=4)
    assert len(problems) == 4 * len(family.difficulties)
    for problem in problems:
        assert family.score(problem, problem.answer).label == "correct"
        perturbed = family.perturbed_answer(problem)
        assert perturbed != problem.answer
        assert family.score(problem, perturbed).label == "wrong", (problem.question, perturbed)
        assert family.score(problem, "no idea").label == "unparseable"
    again = family.sample(seed=3, difficulties=family.difficulties, per_level=4)
    assert [p.problem_id for p in again] == [p.problem_id for p in problems]
    other = family.sample(seed=4, difficulties=family.difficulties, per_level=4)
    assert {p.problem_id for p in other} != {p.problem_id for p in problems}
    assert len({p.problem_id for p in problems}) >= len(problems) - 1


def test_item_seeds_come_from_a_hash_not_a_sum() -> None:
    assert item_rng("arithmetic", 1, 0).random() != item_rng("arithmetic", 0, 1).random()


def test_arithmetic_knob_adds_operations_and_digits() -> None:
    family = FAMILIES.get("arithmetic")()
    by_level = {d: family.sample(0, [d], 5) for d in family.difficulties}
    ops = {d: sum(p.question.count(op) for p in ps for op in "+-*") / 5 for d, ps in by_level.items()}
    assert [ops[d] for d in sorted(ops)] == sorted(ops.values())
    assert all(p.difficulty_knob == d for d, ps in by_level.items() for p in ps)
    with pytest.raises(ConfigError, match="allowed"):
        family.sample(0, [9], 1)


def test_registry_rejects_duplicates_non_families_and_unknown_names() -> None:
    registry: Registry[Family] = Registry("problem family", Family)

    @registry.register("one")
    class One(FAMILIES.get("arithmetic")):  # type: ignore[misc,valid-type]
        pass

    with pytest.raises(ValueError, match="already registered"):
        registry.register("one")(One)
    with pytest.raises(TypeError, match="not a subclass"):
        registry.register("two")(dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="did you mean 'one'"):
        registry.get("onw")
