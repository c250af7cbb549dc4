"""Online samplers in the trainer (issue 23, item 2): each step's problems come from the sampler, and the step's
rewards go back to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.curriculum.samplers import DUMPSampler, SECSampler
from scoring.schemas import PROBLEMS, to_table
from scoring.training.grpo import TrainerConfig, train_online
from scoring.training.online import OnlineSchedule, RegradingSchedule
from synthesis.families import FAMILIES


def test_feedback_updates_each_category_with_its_groups_advantages() -> None:
    sampler = SECSampler({"a": ["a1", "a2"], "b": ["b1", "b2"]}, seed=0)
    schedule = OnlineSchedule(sampler, group_size=2)
    before = sampler.probabilities()
    assert before["a"] == pytest.approx(before["b"])
    # problem a1's group has reward variance (|advantage| > 0); b1's group does not
    by_category = schedule.feedback(["a1", "a1", "b1", "b1"], [1.0, 0.0, 1.0, 1.0])
    assert set(by_category) == {"a", "b"}
    assert all(abs(x) > 0.5 for x in by_category["a"]) and by_category["b"] == [0.0, 0.0]
    after = sampler.probabilities()
    assert after["a"] > before["a"] and after["b"] < before["b"], "SEC moves toward the category that taught"


def test_dump_shifts_toward_a_category_whose_advantage_rises() -> None:
    sampler = DUMPSampler({"easy": ["e1"], "learnable": ["l1"]}, seed=0)
    schedule = OnlineSchedule(sampler, group_size=4)
    for _ in range(5):
        schedule.feedback(["e1"] * 4 + ["l1"] * 4, [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    assert sampler.probabilities()["learnable"] > 0.9


def test_feedback_refuses_groups_that_mix_problems() -> None:
    schedule = OnlineSchedule(SECSampler({"a": ["a1", "a2"]}, seed=0), group_size=2)
    with pytest.raises(ValueError, match="spans several problems"):
        schedule.feedback(["a1", "a2"], [1.0, 0.0])
    with pytest.raises(ValueError, match="groups of 2"):
        schedule.feedback(["a1"], [1.0])


@pytest.mark.slow
def test_each_step_trains_on_what_the_sampler_chose_and_feeds_back_its_rewards(
    tmp_path: Path, smollm2_gguf: Path
) -> None:
    problems = FAMILIES.get("elementary")().sample(0, [1, 2, 6], 2)
    rows = [
        {
            **{k: getattr(p, k) for k in ("problem_id", "question", "answer", "family", "difficulty_knob", "source")},
            "position": i,
        }
        for i, p in enumerate(problems)
    ]
    by_knob: dict[str, list[str]] = {}
    for p in problems:
        by_knob.setdefault(f"knob{p.difficulty_knob}", []).append(p.problem_id)
    sampler = SECSampler(by_knob, seed=3)
    chosen: list[list[str]] = []
    original = sampler.sample

    def recording_sample(size: int) -> list[str]:
        ids = original(size)
        chosen.append(ids)
        return ids

    sampler.sample = recording_sample  # type: ignore[method-assign]
    schedule = OnlineSchedule(sampler, group_size=2)
    config = TrainerConfig(model=str(smollm2_gguf), steps=3, batch_size=2, num_generations=2, max_completion_tokens=8)
    run = train_online(rows, schedule, config, tmp_path / "m", tmp_path / "o", progress=False)

    assert run.steps["step"].to_pylist() == [1, 2, 3]
    assert len(chosen) == 3, "one sampler call per step"
    for step, ids in enumerate(chosen, start=1):
        trained = [r["problem_id"] for r in run.consumption.to_pylist() if r["step"] == step]
        assert sorted(trained) == sorted(set(ids)), f"step {step} trained on the sampler's choice"
    # every step's rewards reached the sampler: 3 steps x 2 problems x 2 samples observed
    assert sum(sampler.state_dict()["counts"].values()) == 12
    assert [sorted(h["advantages"]) for h in schedule.history] == [
        sorted({sampler.category_of(pid) for pid in ids}) for ids in chosen
    ]


def test_regrading_trains_each_chunk_on_what_the_policy_finds_learnable_now() -> None:
    order = [f"p{i}" for i in range(8)]  # Gradus's easy -> hard order
    rounds: list[list[str]] = []

    def current_policy(ids: list[str]) -> dict[str, float]:  # the trainer passes the live policy's pass rates
        rounds.append(ids)
        return {pid: {"p3": 0.5, "p6": 0.25, "p1": 1.0}.get(pid, 0.0) for pid in ids}

    schedule = RegradingSchedule(order, chunk_steps=2, sample_size=8, samples=4, seed=0)
    schedule.estimator = current_policy
    first = schedule.next_batch(2)
    assert first == ["p3", "p6"], "learnable now, closest to 0.5 first (p1 is solved, the rest never)"
    assert schedule.next_batch(2)[:2] == ["p0", "p1"], "then the rest by closeness, initial order on ties"
    assert len(rounds) == 1, "one re-grading per chunk of 2 steps"
    schedule.next_batch(2)
    assert len(rounds) == 2 and schedule.history[1]["step"] == 3
    assert [h["rollouts"] for h in schedule.history] == [32, 32] and schedule.history[0]["learnable"] == 2
    first_round = [e for e in schedule.estimates if e["chunk"] == 0]
    assert len(first_round) == 8 and {e["step"] for e in first_round} == {1}
    assert {e["problem_id"]: e["pass_rate"] for e in first_round}["p3"] == 0.5, "each re-estimate is kept"
    assert {e["step"] for e in schedule.estimates if e["chunk"] == 1} == {3}


def test_regrading_needs_the_policy() -> None:
    with pytest.raises(RuntimeError, match="estimator is not set"):
        RegradingSchedule(["a"], chunk_steps=1, sample_size=1, samples=1).next_batch(1)


@pytest.mark.slow
def test_regrading_asks_the_live_policy_before_each_chunk(tmp_path: Path, smollm2_gguf: Path) -> None:
    problems = FAMILIES.get("elementary")().sample(0, [1, 2], 3)
    rows = [
        {
            **{k: getattr(p, k) for k in ("problem_id", "question", "answer", "family", "difficulty_knob", "source")},
            "position": i,
        }
        for i, p in enumerate(problems)
    ]
    pool = to_table([{k: getattr(p, k) for k in PROBLEMS.names} for p in problems], PROBLEMS)
    schedule = RegradingSchedule([p.problem_id for p in problems], chunk_steps=1, sample_size=4, samples=2, seed=0)
    config = TrainerConfig(model=str(smollm2_gguf), steps=2, batch_size=2, num_generations=2, max_completion_tokens=8)
    run = train_online(rows, schedule, config, tmp_path / "m", tmp_path / "o", progress=False, problems=pool)
    assert [h["step"] for h in schedule.history] == [1, 2] and all(h["problems"] == 4 for h in schedule.history)
    # the live policy's answers are kept with their step: 4 problems x 2 answers before each step
    answers = run.regrades.to_pylist()
    assert sorted({(a["step"], a["problem_id"]) for a in answers}) == sorted(
        {(e["step"], e["problem_id"]) for e in run.reestimates.to_pylist()}
    )
    assert [sum(a["step"] == s for a in answers) for s in (1, 2)] == [8, 8]
    for estimate in run.reestimates.to_pylist():
        mine = [a for a in answers if (a["step"], a["problem_id"]) == (estimate["step"], estimate["problem_id"])]
        assert estimate["pass_rate"] == sum(a["verdict"] == "correct" for a in mine) / len(mine)
    assert run.steps["step"].to_pylist() == [1, 2]
    assert {r["problem_id"] for r in run.consumption.to_pylist()} <= {p.problem_id for p in problems}
