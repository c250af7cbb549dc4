"""reasoning-gym as a source: the contract over a handful of its datasets, its curriculum levels, and the pool."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

import synthesis.reasoning_gym_source as rg_source
from engines.errors import ConfigError
from synthesis.reasoning_gym_source import hashed_seed, rg_dataset_names, rg_levels, rg_problems, rg_score
from synthesis.sources import SourcesConfig, build_pool

# numeric answers, and two whose answers are text: a reversed word and a comma-separated word list
CONTRACT = ["basic_arithmetic", "gcd", "leg_counting", "chain_sum", "spell_backward", "word_sorting"]


def _perturbed(answer: str) -> str:
    """A wrong answer near the right one: the next integer, else the text without its last character."""
    if re.fullmatch(r"-?\d+", answer):
        return str(int(answer) + 1)
    return answer[:-1]


@pytest.mark.parametrize("name", CONTRACT)
def test_reference_answers_score_correct_and_perturbed_ones_wrong(name: str) -> None:
    problems = rg_problems(name, size=8, seed=3, config=None)
    assert len(problems) == 8
    for index, problem in enumerate(problems):
        assert (problem.source, problem.family, problem.source_ref) == (
            "reasoning_gym",
            f"rg:{name}",
            f"rg:{name}:3:{index}",
        )
        assert problem.difficulty_knob is None
        assert rg_score(problem, problem.answer).label == "correct"
        wrong = rg_score(problem, _perturbed(problem.answer))
        assert wrong.label == "wrong", (problem.question, problem.answer)
        assert re.search(r"score \d\.\d{3} < 1\.0", wrong.reason)
        assert rg_score(problem, "  ").label == "unparseable"
    again = rg_problems(name, size=8, seed=3, config=None)
    assert [p.problem_id for p in again] == [p.problem_id for p in problems]
    other = rg_problems(name, size=8, seed=1003, config=None)
    assert {p.problem_id for p in other} != {p.problem_id for p in problems}


def test_metadata_is_the_entry_metadata_as_json_plus_the_generator_spec() -> None:
    problem = rg_problems("leg_counting", size=1, seed=7, config={"max_animals": 4})[0]
    metadata = json.loads(problem.metadata)
    assert metadata["source_dataset"] == "leg_counting" and metadata["source_index"] == 0
    assert isinstance(metadata["animals"], dict) and sum(metadata["animals"].values()) > 0
    assert isinstance(metadata["difficulty"]["num_animals"], list)  # a tuple in reasoning-gym
    spec = metadata["gradus_rg"]
    assert spec["dataset"] == "leg_counting" and (spec["user_seed"], spec["size"], spec["index"]) == (7, 1, 0)
    assert spec["seed"] == hashed_seed("leg_counting", 7)  # reasoning-gym's own seed: a hash, never seed + index
    assert spec["config"] == {"max_animals": 4} and spec["version"]


def test_json_safe_turns_any_metadata_into_json() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque"

    value = {(1, 2): {3, 1}, "t": (1.5, float("nan")), 4: Opaque(), "ok": [True, None, "x"]}
    assert json.loads(json.dumps(rg_source._json_safe(value), allow_nan=False)) == {
        "(1, 2)": [1, 3],
        "t": [1.5, "nan"],
        "4": "opaque",
        "ok": [True, None, "x"],
    }


def test_a_higher_level_makes_larger_problems() -> None:
    assert rg_levels("basic_arithmetic") == 5 and rg_levels("gcd") == 4

    def mean_digits(problems: list) -> float:
        numbers = [n for p in problems for n in re.findall(r"\d+", p.question)]
        return sum(len(n) for n in numbers) / len(numbers)

    def mean_terms(problems: list) -> float:
        return sum(len(re.findall(r"\d+", p.question)) for p in problems) / len(problems)

    low = rg_problems("basic_arithmetic", size=40, seed=5, config=None, level=0)
    high = rg_problems("basic_arithmetic", size=40, seed=5, config=None, level=4)
    assert {p.difficulty_knob for p in low} == {0} and {p.difficulty_knob for p in high} == {4}
    assert mean_digits(high) > mean_digits(low) + 0.5 and mean_terms(high) > mean_terms(low) + 1
    assert all(rg_score(p, p.answer).is_correct for p in high)
    low_gcd = rg_problems("gcd", size=40, seed=5, config=None, level=0)
    high_gcd = rg_problems("gcd", size=40, seed=5, config=None, level=3)
    low_numbers = [[int(n) for n in re.findall(r"\d+", p.question)] for p in low_gcd]
    high_numbers = [[int(n) for n in re.findall(r"\d+", p.question)] for p in high_gcd]
    assert {len(ns) for ns in low_numbers} == {2} and max(map(max, low_numbers)) <= 1_000  # value level 0..1
    assert max(map(len, high_numbers)) > 2 and max(map(max, high_numbers)) > 10_000


def test_configuration_mistakes_are_config_errors() -> None:
    assert "gcd" in rg_dataset_names() and len(rg_dataset_names()) > 50
    with pytest.raises(ConfigError, match=r"unknown reasoning-gym dataset 'gcdd'; did you mean 'gcd'\? available: "):
        rg_problems("gcdd", size=1, seed=0, config=None)
    with pytest.raises(ConfigError, match=r"no config field 'max_valu'; did you mean 'max_value'\?"):
        rg_problems("gcd", size=1, seed=0, config={"max_valu": 10})
    with pytest.raises(ConfigError, match=r"rejected config .*max_value must be > min_value"):
        rg_problems("gcd", size=1, seed=0, config={"min_value": 50, "max_value": 10})
    with pytest.raises(ConfigError, match=r"has levels 0\.\.3; got level 4"):
        rg_problems("gcd", size=1, seed=0, config=None, level=4)
    with pytest.raises(ConfigError, match=r"level 1 sets \['max_value', 'min_value'\]"):
        rg_problems("gcd", size=1, seed=0, config={"min_value": 2, "max_value": 90}, level=1)
    with pytest.raises(ConfigError, match="set 'seed' as its own field"):
        rg_problems("gcd", size=1, seed=0, config={"seed": 4})
    with pytest.raises(ConfigError, match="no reference answer"):
        rg_problems("graph_color", size=1, seed=0, config=None)


def test_scoring_rebuilds_each_dataset_once(monkeypatch: pytest.MonkeyPatch) -> None:
    problems = rg_problems("chain_sum", size=20, seed=11, config={"max_terms": 3})
    monkeypatch.setattr(rg_source, "_DATASETS", {})
    factory = rg_source._factory()
    calls: list[str] = []
    create = factory.create_dataset

    def counting_create(name: str, **kwargs: object) -> object:
        calls.append(name)
        return create(name, **kwargs)

    monkeypatch.setattr(factory, "create_dataset", counting_create)
    verdicts = [rg_score(p, answer) for p in problems for answer in (p.answer, _perturbed(p.answer))]
    assert [v.label for v in verdicts] == ["correct", "wrong"] * 20
    assert calls == ["chain_sum"]


def test_problems_that_cannot_be_rebuilt_are_error_verdicts() -> None:
    problem = rg_problems("gcd", size=1, seed=2, config=None)[0]
    tampered = replace(problem, question=problem.question + " Show your work.")
    assert rg_score(tampered, problem.answer).label == "error"
    assert "differs from the stored question" in rg_score(tampered, problem.answer).reason
    assert rg_score(replace(problem, metadata="{}"), problem.answer).label == "error"
    spec = json.loads(problem.metadata)
    spec["gradus_rg"]["config"] = {"no_such_field": 1}
    verdict = rg_score(replace(problem, metadata=json.dumps(spec)), problem.answer)
    assert verdict.label == "error" and "no_such_field" in verdict.reason


def test_build_pool_takes_reasoning_gym_entries(tmp_path: Path) -> None:
    config = SourcesConfig.model_validate(
        {
            "procedural": [{"family": "arithmetic", "levels": [1], "per_level": 2}],
            "reasoning_gym": [
                {"name": "gcd", "size": 6, "seed": 1, "level": 2},
                {"name": "spell_backward", "size": 4, "config": {"min_word_len": 5}},
            ],
        }
    )
    pool, merged = build_pool(config, tmp_path)
    by_family: dict[str, list] = {}
    for problem in pool.problems:
        by_family.setdefault(problem.family, []).append(problem)
    assert len(by_family["rg:gcd"]) + merged == 6 and len(by_family["rg:spell_backward"]) == 4
    assert {p.difficulty_knob for p in by_family["rg:gcd"]} == {2}
    assert all(rg_score(p, p.answer).is_correct for p in by_family["rg:gcd"] + by_family["rg:spell_backward"])
    assert len(by_family["arithmetic"]) == 2 and not pool.rejects
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SourcesConfig.model_validate({"reasoning_gym": [{"name": "gcd", "size": 2, "levels": [1]}]})
