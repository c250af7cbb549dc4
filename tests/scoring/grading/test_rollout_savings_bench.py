"""bench/rollout_savings.py keeps tuning and reporting apart: halves by problem, winners chosen on the tuning half,
predictors that never see the problem (or, with family folds, the family) they predict. No model calls."""

from __future__ import annotations

import pytest

import bench.rollout_savings as bench
from scoring.grading.predictor import Prediction

FAMILIES = ["arith", "fractions", "logic", "words"]


def toy_recording() -> tuple[bench.Outcomes, bench.Problems]:
    """40 problems: a quarter learnable (4 of 16 correct), the rest never solved."""
    outcomes: bench.Outcomes = {}
    problems: bench.Problems = {}
    for i in range(40):
        pid = f"p{i:02d}"
        learnable = i % 4 == 0
        outcomes[pid] = [learnable and j % 4 == 1 for j in range(bench.K_REF)]
        problems[pid] = {
            "problem_id": pid,
            "question": f"question {i} of family {FAMILIES[i % 4]}",
            "family": FAMILIES[(i // 2) % 4],
            "difficulty_knob": 1 + i % 3,
            "source": "procedural",
        }
    return outcomes, problems


def test_halves_are_disjoint_cover_every_problem_and_balance_bands() -> None:
    outcomes, problems = toy_recording()
    reference = {pid: bench.band_of(o) for pid, o in outcomes.items()}
    for seed in range(5):
        first, second = bench.split_halves(sorted(outcomes), reference, problems, seed)
        assert set(first).isdisjoint(second) and set(first) | set(second) == set(outcomes)
        learnable = [sum(reference[p] == "learnable" for p in half) for half in (first, second)]
        assert abs(learnable[0] - learnable[1]) <= 1 and abs(len(first) - len(second)) <= 1
    assert bench.split_halves(sorted(outcomes), reference, problems, 0) != bench.split_halves(
        sorted(outcomes), reference, problems, 1
    )


def test_select_takes_the_cheapest_setting_that_meets_the_criterion_else_the_best_recall() -> None:
    cheap_bad = bench.Score(problems=10, rollouts=10, agree=9, learnable=2, recalled=0)
    mid_ok = bench.Score(problems=10, rollouts=50, agree=10, learnable=2, recalled=2)
    dear_ok = bench.Score(problems=10, rollouts=90, agree=10, learnable=2, recalled=2)
    assert bench.select([dear_ok, cheap_bad, mid_ok], 0.95, 0.85) == (2, True)
    assert bench.select([cheap_bad, bench.Score(10, 20, 8, 2, 1)], 0.95, 0.85) == (1, False)


def test_trivial_and_reference_rows_and_every_problem_reported_once_per_seed() -> None:
    outcomes, problems = toy_recording()
    reference = {pid: bench.band_of(o) for pid, o in outcomes.items()}
    policies = [p for p in bench.build_policies() if not p.predictor and "adaptive" not in p.name]
    tallies = bench.evaluate(outcomes, problems, reference, policies, [0, 1], 0.95, 0.85)
    trivial = tallies["trivial: no rollouts, all too_hard"].per_seed
    assert all(s.rollouts == 0 and s.agreement == 0.75 and s.recall == 0.0 for s in trivial)
    full = tallies["fixed K=16 (the reference)"].per_seed
    assert all(s.rollouts == 16 * 40 and s.agreement == 1.0 and s.recall == 1.0 for s in full)
    tuned = tallies["fixed K, tuned"]
    assert all(s.problems == 40 for s in tuned.per_seed)
    assert sum(tuned.chosen.values()) == 4  # two seeds × two tuning halves
    # 4 of 16 correct in order F T F F …: K=1 sees 0/1 (too_hard), K=2 sees 1/2 (learnable) — the cheapest that works
    assert tuned.chosen == {"K=2": 4}


@pytest.mark.parametrize("folds", ["random", "family"])
def test_predictor_never_trains_on_what_it_predicts(folds: str, monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes, problems = toy_recording()
    reference = {pid: bench.band_of(o) for pid, o in outcomes.items()}
    tune, report = bench.split_halves(sorted(outcomes), reference, problems, 0)
    calls: list[tuple[list[str], list[str]]] = []

    def fake_fit_predict(_o, _p, train, target, _seed):  # type: ignore[no-untyped-def]
        calls.append((list(train), list(target)))
        return {pid: Prediction(pid, 0.5, 1.0, 1.0, 0.05, 0.95) for pid in target}

    monkeypatch.setattr(bench, "fit_predict", fake_fit_predict)
    for target in (tune, report):
        calls.clear()
        got = bench.predictions(outcomes, problems, tune, target, folds, 0)
        assert set(got) == set(target)
        for train, predicted in calls:
            assert set(train) <= set(tune)  # only the tuning half's grades
            assert set(train).isdisjoint(predicted)
            if folds == "family":
                assert {problems[p]["family"] for p in train}.isdisjoint({problems[p]["family"] for p in predicted})
