"""The chance baseline of bench/skills_recovery.py on a tiny planted table: random attributions among the offered
skills, scored by the project's own profile arithmetic (`scoring.grading.skills.profile_rows`)."""

from __future__ import annotations

import importlib.util
import random
import sys

import pytest

from scoring.config import ProjectConfig, StudentConfig
from scoring.grading.skills import Attribution, SkillsConfig
from synthesis.families import FAMILIES
from synthesis.skill_vocabulary import Vocabulary, family_skills
from tests.conftest import REPO

BENCH = REPO / "bench" / "skills_recovery.py"
FAMILY_NAMES = ["arithmetic", "linear_equations", "sequences", "knights_knaves"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("skills_recovery_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def planted_inputs(bench):  # noqa: ANN001, ANN201
    """One problem per family, 4 rollouts each, failed 1, 2, 3, 4 times; labels = the family's two tags."""
    labels = {f"p-{f}": list(FAMILIES.get(f).skill_ids()) for f in FAMILY_NAMES}
    grades = [{"problem_id": f"p-{f}", "n": 4, "k": 3 - i} for i, f in enumerate(FAMILY_NAMES)]
    vocab = Vocabulary(s for f in FAMILY_NAMES for s in family_skills(FAMILIES.get(f).skill_ids(), f))
    config = ProjectConfig(student=StudentConfig(id="s"), skills=SkillsConfig(enabled=True))
    planted = bench.Planted.of(FAMILY_NAMES, [(i + 1) / 4 for i in range(len(FAMILY_NAMES))])
    offered = bench.offered_by_problem(sorted(labels), labels, vocab, "problem")
    return labels, grades, config, planted, offered


def test_chance_attributions_draw_among_the_offered_skills(bench) -> None:
    offered = {"a": ["x", "y", "z"], "b": ["u"]}
    made = [Attribution("a", 0, ("x",)), Attribution("a", 1, ("x", "y")), Attribution("b", 0, ("u",))]
    drawn = bench.chance_attributions(made, offered, random.Random(1))
    assert [(d.problem_id, d.sample_index, len(d.skills)) for d in drawn] == [("a", 0, 1), ("a", 1, 2), ("b", 0, 1)]
    assert all(set(d.skills) <= set(offered[d.problem_id]) and len(set(d.skills)) == len(d.skills) for d in drawn)
    assert drawn[2].skills == ("u",)  # nothing left to chance
    again = bench.chance_attributions(made, offered, random.Random(1))
    assert again == drawn
    seen = {
        d.skills[0] for seed in range(50) for d in bench.chance_attributions(made[:1], offered, random.Random(seed))
    }
    assert seen == {"x", "y", "z"}


def test_stored_attributions_group_rows_by_failure(bench) -> None:
    rows = [
        {"problem_id": "a", "sample_index": 2, "skill_id": "x"},
        {"problem_id": "a", "sample_index": 2, "skill_id": "y"},
        {"problem_id": "b", "sample_index": 0, "skill_id": "u"},
    ]
    assert bench.stored_attributions(rows) == [Attribution("a", 2, ("x", "y")), Attribution("b", 0, ("u",))]


def test_chance_baseline_on_a_planted_profile(bench) -> None:
    labels, grades, config, planted, offered = planted_inputs(bench)
    assert offered["p-arithmetic"] == ["arithmetic", "order_of_operations"]
    shares_of = bench.profile_shares(config, labels, grades)
    teacher = [Attribution(f"p-{f}", 0, (FAMILIES.get(f).skill_ids()[0],)) for f in FAMILY_NAMES]
    assert shares_of(teacher)["logic"] == pytest.approx(0.4)  # knights_knaves, weighed by failures: 4 of 1+2+3+4
    stats = {"family": planted.per_family, "skill": planted.per_skill}
    chance = bench.chance_baseline(teacher, offered, shares_of, stats, draws=240, seed=0)
    family = chance["family"]
    assert family.measured == pytest.approx(1.0)
    # Each family's main skill is drawn with probability 1/2; rho = 1 when the unnamed mains are none or only the
    # weakest-ranked one (2 of 16 outcomes), undefined when none is named (1 of 16).
    assert family.undefined == pytest.approx(240 / 16, abs=12)
    assert family.p_value == pytest.approx(2 / 15, abs=0.07)
    assert family.median < family.measured
    assert family.p95 <= 1.0
    # Per skill, a family's two tags share its weakness (tied ranks): with one attribution per family, which of
    # them it names cannot move rho, so every draw equals the measured rho and p = 1.
    assert set(chance["skill"].draws) == {chance["skill"].measured}
    assert chance["skill"].p_value == 1.0
    again = bench.chance_baseline(teacher, offered, shares_of, stats, draws=60, seed=0)
    assert again["family"].draws == family.draws[: len(again["family"].draws)]  # seeded: a prefix of the same draws


def test_a_teacher_naming_every_offered_skill_leaves_nothing_to_chance(bench) -> None:
    labels, grades, config, planted, offered = planted_inputs(bench)
    shares_of = bench.profile_shares(config, labels, grades)
    teacher = [Attribution(f"p-{f}", 0, tuple(FAMILIES.get(f).skill_ids())) for f in FAMILY_NAMES]
    chance = bench.chance_baseline(teacher, offered, shares_of, {"family": planted.per_family}, draws=50, seed=3)
    family = chance["family"]
    assert set(family.draws) == {family.measured}
    assert family.median == family.measured
    assert family.p_value == 1.0
