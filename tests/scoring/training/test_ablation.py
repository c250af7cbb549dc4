"""The curriculum ablation's bookkeeping (issue 23): per-step rows from a training run, and the per-arm summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from scoring.schemas import TRAINER_CONSUMPTION, TRAINER_ROLLOUTS, TRAINER_STEPS, to_table
from scoring.training.ablation import ARMS, AblationConfig, step_rows
from scoring.training.ablation_report import accuracy_plot_svg, mean_interval, summarize_runs
from scoring.training.grpo import TrainingRun


def _rollout(step: int, pid: str, index: int, reward: float) -> dict[str, object]:
    return {
        "problem_id": pid,
        "position": 0 if pid == "a" else 1,
        "step": step,
        "sample_index": index,
        "completion": "",
        "correct": reward == 1.0,
        "reward": reward,
        "completion_tokens": 3,
    }


def test_step_rows_count_flat_groups_rollouts_and_carry_the_evaluations() -> None:
    rewards = {(1, "a"): [1.0, 0.0], (1, "b"): [0.0, 0.0], (2, "a"): [1.0, 1.0], (2, "b"): [1.0, 0.0]}
    rollouts = [_rollout(s, p, i, r) for (s, p), rs in rewards.items() for i, r in enumerate(rs)]
    steps = [{"step": s, "epoch": 1, "reward_mean": 0.5, "rollouts": 4, "seconds": 2.0} for s in (1, 2)]
    run = TrainingRun(
        steps=to_table(steps, TRAINER_STEPS),
        consumption=to_table([], TRAINER_CONSUMPTION),
        rollouts=to_table(rollouts, TRAINER_ROLLOUTS),
        adapter_dir=Path("."),
        seconds=10.0,
        load_seconds=1.0,
        evaluations=(
            {"step": 0, "split": "heldout", "accuracy": 0.25},
            {"step": 2, "split": "heldout", "accuracy": 0.5},
            {"step": 2, "split": "hard", "accuracy": 0.0},
        ),
    )
    rows = step_rows("balanced_band", 3, run, grading_rollouts=100)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert [r["zero_variance_groups"] for r in rows] == [0, 1, 1]
    assert [r["groups"] for r in rows] == [0, 2, 2]
    assert [r["training_rollouts"] for r in rows] == [0, 4, 8]
    assert [r["total_rollouts"] for r in rows] == [100, 104, 108]
    assert [r["heldout_accuracy"] for r in rows] == [0.25, None, 0.5]
    assert [r["hard_accuracy"] for r in rows] == [None, None, 0.0]
    assert [r["seconds"] for r in rows] == [1.0, 3.0, 5.0]
    assert {r["arm"] for r in rows} == {"balanced_band"} and {r["seed"] for r in rows} == {3}


def _curve(arm: str, seed: int, accuracies: dict[int, float], charge: int = 0) -> list[dict[str, object]]:
    return [
        {
            "arm": arm,
            "seed": seed,
            "step": step,
            "heldout_accuracy": acc,
            "groups": 4,
            "seconds": float(step),
            "zero_variance_groups": 2 if arm == "random" else 1,
            "total_rollouts": charge + 16 * step,
        }
        for step, acc in accuracies.items()
    ]


def test_summary_measures_steps_to_the_random_arms_final_accuracy() -> None:
    rows = [
        *_curve("random", 0, {0: 0.1, 5: 0.3, 10: 0.5}),
        *_curve("random", 1, {0: 0.1, 5: 0.2, 10: 0.5}),
        *_curve("balanced_band", 0, {0: 0.1, 5: 0.5, 10: 0.6}, charge=100),
        *_curve("balanced_band", 1, {0: 0.1, 5: 0.6, 10: 0.7}, charge=100),
        *_curve("hard_to_easy", 0, {0: 0.1, 5: 0.1, 10: 0.2}),
    ]
    summary = {r["arm"]: r for r in summarize_runs(rows)}
    assert summary["random"]["steps_to_reference"].startswith("10.0") and summary["random"]["reached"] == "2/2"
    assert summary["balanced_band"]["steps_to_reference"].startswith("5.0")
    assert summary["balanced_band"]["step_ratio"] == "0.50"
    assert summary["balanced_band"]["rollouts_to_reference"].startswith("180"), "grading rollouts are charged"
    assert (
        summary["hard_to_easy"]["reached"] == "0/1" and summary["hard_to_easy"]["steps_to_reference"] == "not reached"
    )
    assert (
        summary["random"]["zero_variance_share"] == "0.50" and summary["balanced_band"]["zero_variance_share"] == "0.25"
    )
    assert summary["balanced_band"]["acc_end"].startswith("0.650 [")
    assert "<svg" in accuracy_plot_svg(rows)


def test_mean_interval_is_the_t_interval_and_degenerates_for_one_value() -> None:
    mean, low, high = mean_interval([0.4, 0.6])
    assert mean == pytest.approx(0.5) and low == pytest.approx(0.5 - 12.706 * 0.1, abs=1e-3)
    assert mean_interval([0.3]) == (0.3, 0.3, 0.3)


def test_unknown_arms_are_named_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match="did you mean 'balanced_band'"):
        AblationConfig(arms=("balanced_bnad",))
    assert set(AblationConfig().arms) == set(ARMS.names())
