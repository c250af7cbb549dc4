"""Online curricula in the trainer: each step's problems chosen by a bandit sampler from the rewards so far.

`OnlineSchedule` is trainer-agnostic: `next_batch(n)` asks the sampler (`scoring.curriculum.samplers`: SEC,
methods §2; DUMP, methods §3) for the step's problem ids, and `feedback(problem_ids, rewards)` turns the step's
rewards into GRPO advantages per group of `group_size` samples and updates each category once with them.

`online_grpo_trainer_class()` wires a schedule into TRL's `GRPOTrainer` with no delay: the dataloader still walks
its (ignored) dataset, but at the moment a step generates, the batch is replaced by the schedule's choice, so step
t's problems are chosen after step t−1's rewards were fed back (a sampler that read the dataloader would run one
batch ahead, because accelerate prefetches one batch).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scoring.curriculum.category_sampler import CategorySampler, grpo_advantages


class OnlineSchedule:
    """The step-by-step problem choice of an online sampler, and its feedback loop (one call of each per step)."""

    def __init__(self, sampler: CategorySampler, group_size: int) -> None:
        self.sampler = sampler
        self.group_size = group_size
        self.history: list[dict[str, Any]] = []  # per step: the category probabilities the batch was drawn from

    def next_batch(self, size: int) -> list[str]:
        """The problem ids of the next step, drawn under the sampler's current category distribution."""
        self.history.append({"probabilities": self.sampler.probabilities()})
        return self.sampler.sample(size)

    def feedback(self, problem_ids: Sequence[str], rewards: Sequence[float]) -> dict[str, list[float]]:
        """Update the sampler with one step's rewards: `problem_ids[i]` is the problem of sample i, and samples come
        in consecutive groups of `group_size` per problem (TRL's layout). Returns the advantages per category."""
        if len(problem_ids) != len(rewards) or len(rewards) % self.group_size:
            raise ValueError(f"{len(rewards)} rewards for {len(problem_ids)} samples in groups of {self.group_size}")
        advantages = grpo_advantages(list(rewards), self.group_size)
        by_category: dict[str, list[float]] = defaultdict(list)
        for start in range(0, len(rewards), self.group_size):
            group = problem_ids[start : start + self.group_size]
            if len(set(group)) != 1:
                raise ValueError(f"a group of samples spans several problems: {sorted(set(group))}")
            by_category[self.sampler.category_of(group[0])] += advantages[start : start + self.group_size]
        for category in sorted(by_category):
            self.sampler.update(category, by_category[category])
        if self.history:
            self.history[-1]["advantages"] = {c: list(v) for c, v in sorted(by_category.items())}
        return dict(by_category)


def online_grpo_trainer_class() -> type:
    """A `GRPOTrainer` subclass whose every generation batch is chosen by `self.online_schedule` (set after
    construction) from `self.online_rows` (problem id → dataset row). Imported lazily: TRL is an optional extra."""
    from trl import GRPOTrainer

    class OnlineGRPOTrainer(GRPOTrainer):
        online_schedule: OnlineSchedule | RegradingSchedule
        online_rows: Mapping[str, dict[str, Any]]

        def _prepare_inputs(self, generation_batch: Any) -> Any:
            generate_every = self.args.steps_per_generation * self.num_iterations
            if self.model.training and (self._step % generate_every == 0 or self._buffered_inputs is None):
                # Same shape as the sampler's batch: each chosen prompt repeated num_generations times, in order.
                chosen = self.online_schedule.next_batch(len(generation_batch) // self.num_generations)
                generation_batch = [dict(self.online_rows[pid]) for pid in chosen for _ in range(self.num_generations)]
            return super()._prepare_inputs(generation_batch)

    return OnlineGRPOTrainer


class AdclConfig(BaseModel):
    """How ADCL re-grades during training (methods §12 leaves chunk size and sample counts open): `trainer.adcl` in
    gradus.yaml for the trainer stage, `ablation.adcl` for the ablation's `adcl` arm."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_steps: int = Field(10, ge=1, description="steps trained between re-gradings")
    sample_size: int = Field(48, ge=1, description="problems re-graded each time (a seeded draw from the pool)")
    samples: int = Field(4, ge=1, description="answers per re-graded problem, from the current policy")


class RegradingSchedule:
    """ADCL (methods §12; Zhang et al., arXiv 2505.08364): grades go stale as the policy learns, so re-estimate
    difficulty with the current policy before each chunk of training, and train the chunk on what is learnable now.

    Before every `chunk_steps` steps, `sample_size` problems (a seeded draw from the graded pool, taken in the
    pool's initial easy→hard order) are re-graded by `estimator` (the trainer sets it: `samples` answers each from
    the current policy); the chunk's batches are those with 0 < pass rate < 1, closest to 0.5 first, topped up with
    the rest by the same closeness when too few remain. The re-grading rollouts are counted per step (`history`)
    so the ablation can charge them; each re-estimate is kept (`estimates`: step, chunk, problem, initial rank,
    pass rate), and the estimator may add the answers it graded to `answers` (the trainer does, with their step),
    so they can be written back as evidence of the training student. `feedback` is accepted and ignored: this
    schedule learns only from re-grading.
    """

    def __init__(
        self, order: Sequence[str], *, chunk_steps: int, sample_size: int, samples: int, seed: int = 0
    ) -> None:
        if not order:
            raise ValueError("a regrading schedule needs at least one problem")
        self.order = list(order)
        self.chunk_steps, self.sample_size, self.samples = chunk_steps, sample_size, samples
        self.estimator: Any = None  # problem ids -> {problem id: pass rate}, set by the trainer
        self.history: list[dict[str, Any]] = []  # per re-grading: step, problems, rollouts, learnable
        self.estimates: list[dict[str, Any]] = []  # per re-graded problem: step, chunk, problem_id, rank, pass_rate
        self.answers: list[dict[str, Any]] = []  # the graded answers behind `estimates`, with their step
        self._rank = {pid: i for i, pid in enumerate(self.order)}
        self._rng = np.random.default_rng(seed)
        self._queue: list[str] = []
        self._step = 0

    @property
    def step(self) -> int:
        """The step being prepared (1 for the first): the step a re-grading made now is taken at."""
        return self._step

    def next_batch(self, size: int) -> list[str]:
        """The next step's problems; re-grades a fresh sample first when the current chunk is used up."""
        self._step += 1
        if len(self._queue) < size:
            self._queue = self._regrade(size)
        batch, self._queue = self._queue[:size], self._queue[size:]
        return batch

    def feedback(self, problem_ids: Sequence[str], rewards: Sequence[float]) -> None:
        """Nothing to learn from training rewards: the next chunk is chosen by re-grading."""

    def _regrade(self, size: int) -> list[str]:
        if self.estimator is None:
            raise RuntimeError("RegradingSchedule.estimator is not set: the trainer sets it to the current policy")
        drawn = self._rng.choice(len(self.order), size=min(self.sample_size, len(self.order)), replace=False)
        candidates = [self.order[i] for i in sorted(drawn.tolist())]
        rates = self.estimator(candidates)
        chunk = len(self.history)
        self.estimates += [
            {
                "step": self._step,
                "chunk": chunk,
                "problem_id": pid,
                "initial_rank": self._rank[pid],
                "pass_rate": float(rates[pid]),
            }
            for pid in candidates
        ]
        closeness = sorted(candidates, key=lambda pid: (abs(rates[pid] - 0.5), self._rank[pid]))
        learnable = [pid for pid in closeness if 0.0 < rates[pid] < 1.0]
        chosen = learnable + [pid for pid in closeness if pid not in set(learnable)]
        need = self.chunk_steps * size
        self.history.append(
            {
                "step": self._step,
                "problems": len(candidates),
                "rollouts": len(candidates) * self.samples,
                "learnable": len(learnable),
            }
        )
        return (chosen * (need // len(chosen) + 1))[:need]
