"""A training run written back as evidence of the training student (issue 26, item 3): ADCL's re-grading answers
land in `rollouts` next to the GRPO samples, with their step, are graded into `difficulty`, and storing the run
again (a killed run that trained again) adds nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from scoring.schemas import (
    TRAINER_CONSUMPTION,
    TRAINER_REESTIMATES,
    TRAINER_REGRADES,
    TRAINER_ROLLOUTS,
    TRAINER_STEPS,
    to_table,
)
from scoring.stages.training import (
    adcl_reestimates,
    store_training_evidence,
    training_run_id,
    training_student_id,
)
from scoring.storage import DataRoot
from scoring.training.grpo import TrainerConfig, TrainingRun
from scoring.training.online import AdclConfig
from tests.scoring.stages.conftest import project_config


def _answer(step: int, pid: str, index: int, verdict: str) -> dict[str, Any]:
    return {
        "step": step,
        "problem_id": pid,
        "sample_index": index,
        "completion": f"answer {index} at {step}",
        "extracted_answer": "7" if verdict == "correct" else "8",
        "verdict": verdict,
        "verdict_reason": "",
        "verifier_version": "v-test",
        "verifier_rule": "exact",
        "completion_tokens": 3,
    }


def _run(tmp_path: Path) -> TrainingRun:
    train = [
        {**_answer(1, "p1", i, "correct" if i == 0 else "wrong"), "position": 0, "correct": i == 0, "reward": 1.0}
        for i in range(2)
    ]
    # p1 re-graded before step 1 (1 of 2 right) and again before step 11 (2 of 2); p2 once (0 of 2)
    regrades = [_answer(1, "p1", 0, "correct"), _answer(1, "p1", 1, "wrong")]
    regrades += [_answer(1, "p2", 0, "wrong"), _answer(1, "p2", 1, "wrong")]
    regrades += [_answer(11, "p1", 0, "correct"), _answer(11, "p1", 1, "correct")]
    estimates = [
        {"step": 1, "chunk": 0, "problem_id": "p1", "initial_rank": 0, "pass_rate": 0.5},
        {"step": 1, "chunk": 0, "problem_id": "p2", "initial_rank": 1, "pass_rate": 0.0},
        {"step": 11, "chunk": 1, "problem_id": "p1", "initial_rank": 0, "pass_rate": 1.0},
    ]
    return TrainingRun(
        steps=to_table([], TRAINER_STEPS),
        consumption=to_table([], TRAINER_CONSUMPTION),
        rollouts=to_table([{k: r[k] for k in TRAINER_ROLLOUTS.names} for r in train], TRAINER_ROLLOUTS),
        adapter_dir=tmp_path,
        seconds=0.0,
        regrades=to_table(regrades, TRAINER_REGRADES),
        reestimates=to_table(estimates, TRAINER_REESTIMATES),
    )


def test_regrading_answers_become_evidence_of_the_training_student_once(tmp_path: Path) -> None:
    config = project_config(tmp_path, student="s", trainer=TrainerConfig(adcl=AdclConfig(chunk_steps=10)))
    root = DataRoot(tmp_path)
    run_id = training_run_id(config, "0" * 64)
    store_training_evidence(config, root, _run(tmp_path), run_id)

    student = training_student_id(config)
    part = {"student": student}
    stored = root.read_table("rollouts", part).to_pylist()
    assert {r["student_id"] for r in stored} == {"s-train"} and {r["student_revision"] for r in stored} == {run_id}
    regraded = [r for r in stored if r["sampling_hash"].startswith("regrade-")]
    assert len(regraded) == 6 and len(stored) == 8, "6 re-grading answers next to the 2 training samples"
    p1 = sorted((r["sample_index"], r["finish_reason"], r["verdict"]) for r in regraded if r["problem_id"] == "p1")
    assert p1 == [
        (0, "regrade_step_1", "correct"),
        (1, "regrade_step_1", "wrong"),
        (2, "regrade_step_11", "correct"),
        (3, "regrade_step_11", "correct"),
    ], "every re-grading of p1 kept, numbered in step order, with its step"

    grades = root.read_table("difficulty", part).to_pylist()
    regrade_grades = {g["problem_id"]: (g["n"], g["k"]) for g in grades if g["sampling_hash"].startswith("regrade-")}
    assert regrade_grades == {"p1": (4, 3), "p2": (2, 0)}, "the training student's difficulty from its re-estimates"

    store_training_evidence(config, root, _run(tmp_path), run_id)  # the same run stored again: a resumed run
    again = root.read_table("rollouts", part)
    assert again.num_rows == 8, "a rerun adds no evidence"
    assert pc.count_distinct(again.column("sample_index")).as_py() == 4


def test_reestimates_carry_the_initial_and_the_reestimated_difficulty(tmp_path: Path) -> None:
    curriculum = [{"problem_id": "p1", "difficulty": 0.2}, {"problem_id": "p2", "difficulty": 0.6}]
    rows = adcl_reestimates(_run(tmp_path), curriculum, "s", "run-1").to_pylist()
    assert [(r["problem_id"], r["step"], r["chunk"]) for r in rows] == [("p1", 1, 0), ("p2", 1, 0), ("p1", 11, 1)]
    assert [(r["initial_difficulty"], r["reestimated_difficulty"]) for r in rows] == [
        (0.2, 0.5),
        (0.6, 1.0),
        (0.2, 0.0),
    ]


def test_adcl_joins_the_run_address_only_when_set(tmp_path: Path) -> None:
    static = project_config(tmp_path, trainer=TrainerConfig())
    adcl = project_config(tmp_path, trainer=TrainerConfig(adcl=AdclConfig()))
    other_chunks = project_config(tmp_path, trainer=TrainerConfig(adcl=AdclConfig(chunk_steps=5)))
    ids = {training_run_id(c, "0" * 64) for c in (static, adcl, other_chunks)}
    assert len(ids) == 3
    # a static run keeps the id it had before `adcl` existed: the trainer config without it
    payload = json.dumps(
        {"trainer": TrainerConfig().model_dump(exclude={"enabled", "adcl"}), "curriculum": "0" * 64}, sort_keys=True
    )
    assert training_run_id(static, "0" * 64).endswith(hashlib.sha256(payload.encode()).hexdigest()[:12])
