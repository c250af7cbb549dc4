"""Online curriculum samplers: choose each training step's problems by category from the learning signal so far.

Two bandit schedulers over problem categories (arms) that a trainer calls step by step:

- `SECSampler`, Self-Evolving Curriculum (`../shared/methods.md` §2; Chen et al., *Self-Evolving Curriculum for
  LLM Reasoning*, arXiv 2505.14970). A category's value Q is an exponential moving average (TD(0)) of the mean
  |advantage| of its rollouts. Categories are drawn from softmax(Q/τ).
- `DUMPSampler`, distribution-level UCB (`../shared/methods.md` §3; Wang et al., *DUMP: Automated
  Distribution-Level Curriculum Learning for RL-based LLM Post-training*, arXiv 2504.09710). A category's score is
  the mean |advantage| over a sliding window plus a UCB exploration bonus. Categories are drawn from
  softmax(UCB/τ).

A trainer step:

    batch = sampler.sample(256)
    # roll out G responses per problem; compute GRPO advantages; group them by sampler.category_of(problem_id)
    for category, advantages in advantages_by_category.items():  # once per category per step
        sampler.update(category, advantages)
    checkpoint["sampler"] = sampler.state_dict()  # JSON-serialisable; load_state_dict resumes exactly

The sampling rule, determinism and checkpoints they share are `CategorySampler`'s (`category_sampler.py`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scoring.curriculum.category_sampler import CategorySampler
from synthesis.registry import Registry

SEC_METHOD = "sec_v1"
DUMP_METHOD = "dump_v1"


class SECConfig(BaseModel):
    """SEC settings. The defaults come from the Defaults table in `../shared/methods.md` §2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="α in Q ← α·r + (1−α)·Q. The paper's reproduction commands all use 0.5; the code's config "
        "default is 0.1",
    )
    temperature: float = Field(
        1.0,
        gt=0.0,
        allow_inf_nan=False,
        description="τ in softmax(Q/τ). 1.0 is the code's config default and the Countdown setting; the paper used "
        "0.4 for MATH with Qwen2.5-7B and 0.2 for the SEC-2D puzzles",
    )
    initial_value: float = Field(
        0.0, ge=0.0, allow_inf_nan=False, description="Q of every category before its first update (the code uses 0)"
    )


class DUMPConfig(BaseModel):
    """DUMP settings. The defaults come from `../shared/methods.md` §3 (Defaults and implementation details)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_size: int = Field(300, ge=1, description="the last k |advantage| values (one per rollout) kept per category")
    exploration_weight: float = Field(
        1.0,
        ge=0.0,
        allow_inf_nan=False,
        description="c in L̂ + c·sqrt(2·ln(n_total+1)/(n_j+1)); hard-coded to 1.0 in the code",
    )
    temperature: float = Field(0.1, gt=0.0, allow_inf_nan=False, description="τ in softmax(UCB/τ)")


# Every online sampler by name; `<name>_<version>` is the `method` a sampler writes into its checkpoints.
SAMPLERS: Registry[type[CategorySampler]] = Registry("online sampler", CategorySampler)


@SAMPLERS.register("sec", version="v1", description="SEC: softmax over a TD(0) value of mean |advantage| (§2)")
class SECSampler(CategorySampler):
    """Self-Evolving Curriculum (`../shared/methods.md` §2; Chen et al., arXiv 2505.14970).

    `update(c, A)` sets `Q(c) ← α·mean|A| + (1−α)·Q(c)`, and a category is drawn with probability softmax(Q/τ)(c).
    Only the updated category's Q moves. The authors' code also pulls every category that was not sampled in a step
    toward 0; methods §2 step 7 recommends updating only the observed categories when there are many of them.
    """

    method = SEC_METHOD
    config_class = SECConfig
    config: SECConfig

    def values(self) -> dict[str, float]:
        """Return each category's current value Q."""
        return dict(self._values)

    def _reset_arms(self) -> None:
        self._values = dict.fromkeys(self._categories, float(self.config.initial_value))

    def _weights(self) -> np.ndarray:
        return _softmax(np.array([self._values[c] for c in self._categories]), self.config.temperature)

    def _observe(self, category: str, magnitudes: np.ndarray) -> None:
        reward = float(magnitudes.mean())
        alpha = self.config.learning_rate
        self._values[category] = alpha * reward + (1 - alpha) * self._values[category]

    def _arm_state(self) -> dict[str, Any]:
        return {"values": dict(self._values)}

    def _restore_arms(self, state: Mapping[str, Any]) -> None:
        values = state.get("values")
        if not isinstance(values, Mapping) or set(values) != set(self._categories):
            raise ValueError(f"state['values'] must map exactly these categories: {list(self._categories)}")
        bad = {c: v for c, v in values.items() if not isinstance(v, int | float) or not math.isfinite(v)}
        if bad:
            raise ValueError(f"state['values'] holds non-finite or non-numeric values: {bad}")
        self._values = {c: float(values[c]) for c in self._categories}


@SAMPLERS.register("dump", version="v1", description="DUMP: softmax over windowed |advantage| + UCB bonus (§3)")
class DUMPSampler(CategorySampler):
    """DUMP, distribution-level UCB (`../shared/methods.md` §3; Wang et al., arXiv 2504.09710).

    `UCB_j = L̂_j + c·sqrt(2·ln(n_total + 1) / (n_j + 1))`, where `L̂_j` is the mean of the last `window_size`
    |advantage| values of category j, `n_j` is the number of rollouts observed for j over the whole run, and
    `n_total = Σ n_j`. A category is drawn with probability softmax(UCB/τ). A category never updated has an empty
    window and gets `L̂ = 0`, as in the authors' code, but it gets the largest bonus because `n_j = 0`. Before
    any update every score is 0, so the distribution is uniform, matching the paper's initial `P(d_j) = 1/N`.
    """

    method = DUMP_METHOD
    config_class = DUMPConfig
    config: DUMPConfig

    def ucb_scores(self) -> dict[str, float]:
        """Return each category's current UCB score."""
        return dict(zip(self._categories, self._ucb_array().tolist(), strict=True))

    def _ucb_array(self) -> np.ndarray:
        log_total = math.log(sum(self._counts.values()) + 1)
        scores = []
        for category in self._categories:
            window = self._windows[category]
            window_mean = math.fsum(window) / len(window) if window else 0.0
            bonus = self.config.exploration_weight * math.sqrt(2 * log_total / (self._counts[category] + 1))
            scores.append(window_mean + bonus)
        return np.array(scores)

    def _reset_arms(self) -> None:
        self._windows = {c: deque[float](maxlen=self.config.window_size) for c in self._categories}

    def _weights(self) -> np.ndarray:
        return _softmax(self._ucb_array(), self.config.temperature)

    def _observe(self, category: str, magnitudes: np.ndarray) -> None:
        self._windows[category].extend(magnitudes.tolist())  # the deque's maxlen evicts the oldest values

    def _arm_state(self) -> dict[str, Any]:
        return {"windows": {c: list(window) for c, window in self._windows.items()}}

    def _restore_arms(self, state: Mapping[str, Any]) -> None:
        windows = state.get("windows")
        if not isinstance(windows, Mapping) or set(windows) != set(self._categories):
            raise ValueError(f"state['windows'] must map exactly these categories: {list(self._categories)}")
        for category, window in windows.items():
            if len(window) > self.config.window_size or len(window) > state["counts"][category]:
                raise ValueError(f"state['windows'][{category!r}] holds more values than its window or its count")
            if not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in window):
                raise ValueError(f"state['windows'][{category!r}] must hold finite |advantage| values ≥ 0")
        size = self.config.window_size
        self._windows = {c: deque((float(v) for v in windows[c]), maxlen=size) for c in self._categories}


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    # Shifting by the maximum keeps exp() finite at small τ (DUMP's 0.1) without changing the result.
    weights = np.exp((scores - scores.max()) / temperature)
    return weights / weights.sum()
