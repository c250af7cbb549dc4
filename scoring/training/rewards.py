"""The GRPO reward and the per-step record: our verifier's verdict as the reward (1.0 correct, else 0.0), every
training rollout and the order in which curriculum positions were consumed (method `grpo_lora_v1`, see
`scoring.training.grpo`)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from scoring.grading.verify import CheckItem, Verifier
from synthesis.problem import Problem

REWARD_CORRECT, REWARD_OTHER = 1.0, 0.0


def _completion_text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(str(message.get("content") or "") for message in completion)


class VerifiedReward:
    """TRL reward function: 1.0 when our verifier finds the completion correct, else 0.0. Records every rollout
    and the order in which curriculum positions were consumed."""

    __name__ = "verified_answer"  # TRL names reward columns after this

    def __init__(
        self,
        verifier: Verifier,
        problems: dict[str, Problem | None],
        steps_per_epoch: int,
        on_rewards: Callable[[Sequence[str], Sequence[float]], object] | None = None,
    ) -> None:
        self.verifier = verifier
        self.on_rewards = on_rewards  # an online schedule's feedback: (problem id per sample, reward per sample)
        self.problems = problems
        self.steps_per_epoch = steps_per_epoch
        self.rollouts: list[dict[str, Any]] = []
        self.consumption: list[dict[str, Any]] = []

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[list[int]],
        *,
        problem_id: list[str],
        position: list[int],
        answer: list[str],
        trainer_state: Any,
        **_: Any,
    ) -> list[float]:
        step = int(trainer_state.global_step) + 1  # the step being computed; global_step counts finished ones
        texts = [_completion_text(c) for c in completions]
        problems = [self.problems.get(pid) for pid in problem_id]
        items = [CheckItem(gold, text, p) for gold, text, p in zip(answer, texts, problems, strict=True)]
        verdicts = self.verifier.check(items)
        seen: Counter[str] = Counter()
        rewards = []
        for pid, pos, text, ids, verdict in zip(problem_id, position, texts, completion_ids, verdicts, strict=True):
            if seen[pid] == 0:
                epoch = (step - 1) // self.steps_per_epoch + 1
                self.consumption.append({"step": step, "epoch": epoch, "position": pos, "problem_id": pid})
            reward = REWARD_CORRECT if verdict.label == "correct" else REWARD_OTHER
            rewards.append(reward)
            self.rollouts.append(
                {
                    "problem_id": pid,
                    "position": pos,
                    "step": step,
                    "sample_index": seen[pid],
                    "completion": text,
                    "extracted_answer": verdict.extracted,
                    "correct": verdict.label == "correct",
                    "verdict": verdict.label,
                    "verdict_reason": verdict.reason,
                    "verifier_version": self.verifier.version,
                    "verifier_rule": verdict.rule,
                    "completion_tokens": len(ids),
                    "reward": reward,
                }
            )
            seen[pid] += 1
        if self.on_rewards is not None:
            self.on_rewards(problem_id, rewards)
        return rewards


def step_recorder(reward: VerifiedReward) -> Any:
    """A `TrainerCallback` timing each optimizer step and joining TRL's logged loss with our own reward stats."""
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[dict[str, Any]] = []
            self._started = (0.0, 0.0)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._started = (time.perf_counter(), time.process_time())

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            wall, cpu = time.perf_counter() - self._started[0], time.process_time() - self._started[1]
            step = int(state.global_step)
            mine = [r for r in reward.rollouts if r["step"] == step]
            rewards = [r["reward"] for r in mine]
            mean = sum(rewards) / len(rewards) if rewards else math.nan
            std = math.sqrt(sum((x - mean) ** 2 for x in rewards) / len(rewards)) if rewards else math.nan
            tokens = [r["completion_tokens"] for r in mine]
            self.rows.append(
                {
                    "step": step,
                    "epoch": (step - 1) // reward.steps_per_epoch + 1,
                    "reward_mean": mean,
                    "reward_std": std,
                    "correct": sum(r["correct"] for r in mine),
                    "rollouts": len(mine),
                    "completion_tokens_mean": sum(tokens) / len(tokens) if tokens else math.nan,
                    "seconds": round(wall, 3),
                    "cpu_seconds": round(cpu, 3),
                }
            )

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
            if logs and "loss" in logs and self.rows and self.rows[-1]["step"] == state.global_step:
                self.rows[-1].update(
                    loss=float(logs["loss"]),
                    grad_norm=float(logs.get("grad_norm", math.nan)),
                    learning_rate=float(logs.get("learning_rate", math.nan)),
                )

    return StepRecorder()
