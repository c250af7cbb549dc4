"""What the online curriculum samplers share (`samplers.py`: SEC and DUMP, `../shared/methods.md` §2, §3): a bandit
over problem categories (arms) that a trainer calls step by step — problem bookkeeping, the sampling rule, the
update entry points (GRPO advantages from rewards) and checkpoints.

Sampling rule (every sampler): the category distribution is fixed for the whole `sample` call. Each slot of the
batch draws a category independently, then takes that category's next problem in a shuffled order. A category
serves each of its problems once before it is reshuffled for a new pass. A problem therefore repeats within a
batch only if more problems were drawn from its category than the category holds. Neither reference
implementation does this. SEC's loader falls back to another arm when one runs dry, which bends the distribution
the bandit chose. DUMP samples with replacement, which repeats problems for no reason.

Determinism: categories are kept sorted by name and problems sorted by id, so the input order does not matter. The
same problems, config, seed and call history give the same samples. All randomness comes from one numpy
Generator, and its state is part of `state_dict()`.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ValidationError

from scoring.errors import ConfigError, did_you_mean

# verl's `compute_grpo_outcome_advantage` default ε; both reference implementations are built on verl.
GRPO_EPSILON = 1e-6


def grpo_advantages(rewards: Sequence[float], group_size: int, *, epsilon: float = GRPO_EPSILON) -> list[float]:
    """Return GRPO advantages `A_i = (r_i − mean(r)) / (std(r) + ε)` for each group of `group_size` rewards.

    The groups are consecutive, so `rewards[:group_size]` is the first prompt's group, and so on. The std is the
    Bessel (divide by G−1) std, as in `torch.std` and verl's GRPO (`../shared/methods.md` §0 notation, §1.4 step 4).
    A group whose rewards are all equal gets advantages of 0.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an integer ≥ 2 (a group of one has no baseline), got {group_size!r}")
    values = _finite_array(rewards, "rewards")
    if values.size == 0 or values.size % group_size:
        raise ValueError(
            f"got {values.size} rewards, which is not a positive multiple of group_size={group_size}; pass every "
            "rollout of every prompt, one group after another"
        )
    groups = values.reshape(-1, group_size)
    centred = groups - groups.mean(axis=1, keepdims=True)
    return (centred / (groups.std(axis=1, ddof=1, keepdims=True) + epsilon)).ravel().tolist()


def problems_by_category(table: pa.Table, category_column: str, id_column: str = "problem_id") -> dict[str, list[str]]:
    """Group the ids in `id_column` by the value of `category_column` (non-string categories become strings).

    A polars DataFrame is also accepted; it is converted with `.to_arrow()`.
    """
    if not isinstance(table, pa.Table) and hasattr(table, "to_arrow"):
        table = table.to_arrow()
    for column in (id_column, category_column):
        if column not in table.column_names:
            raise ConfigError(
                f"the problems table has no column {column!r};" + did_you_mean(column, table.column_names)
            )
    grouped: dict[str, list[str]] = {}
    rows = zip(table.column(id_column).to_pylist(), table.column(category_column).to_pylist(), strict=True)
    for row, (problem_id, category) in enumerate(rows):
        if problem_id is None or category is None:
            raise ConfigError(
                f"row {row} of the problems table has a null {id_column if problem_id is None else category_column} "
                f"(problem_id={problem_id!r}, {category_column}={category!r}); every problem needs an id and a category"
            )
        grouped.setdefault(str(category), []).append(str(problem_id))
    return grouped


class CategorySampler(ABC):
    """What SEC and DUMP share: problem bookkeeping, the sampling rule, the update entry points and checkpoints.

    Subclasses define how per-rollout |advantage| values become category probabilities.
    """

    method: ClassVar[str]
    config_class: ClassVar[type[BaseModel]]

    def __init__(self, problems: Mapping[str, Sequence[str]], config: BaseModel | None = None, *, seed: int = 0):
        """Set up a sampler over `problems` (category -> problem ids), with no observations yet.

        Raises `ConfigError` (a `ValueError`) on an empty category, a problem listed twice, or a config of the
        wrong type.
        """
        if config is not None and not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}"
            )
        self.config = config if config is not None else self.config_class()
        self._problems = _validated_problems(problems)
        self._categories = tuple(self._problems)
        self._category_by_problem = {pid: c for c, ids in self._problems.items() for pid in ids}
        self._rng = np.random.default_rng(seed)
        self._orders = {c: self._rng.permutation(len(ids)).tolist() for c, ids in self._problems.items()}
        self._positions = dict.fromkeys(self._categories, 0)
        self._counts = dict.fromkeys(self._categories, 0)  # rollouts observed per category, all time
        self._reset_arms()

    @classmethod
    def from_table(
        cls, table: pa.Table, *, category_column: str, config: BaseModel | None = None, seed: int = 0
    ) -> Self:
        """Build a sampler from a table with a `problem_id` column and a category column (e.g. `family`)."""
        return cls(problems_by_category(table, category_column), config, seed=seed)

    @property
    def categories(self) -> tuple[str, ...]:
        """The category names, sorted."""
        return self._categories

    def category_of(self, problem_id: str) -> str:
        """Return the category that `problem_id` belongs to."""
        try:
            return self._category_by_problem[problem_id]
        except KeyError:
            raise ValueError(f"unknown problem id {problem_id!r}: it is in none of this sampler's categories") from None

    def sample(self, batch_size: int) -> list[str]:
        """Draw `batch_size` problem ids under the current category distribution (module docstring: sampling rule)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer ≥ 1, got {batch_size!r}")
        drawn = self._rng.choice(len(self._categories), size=int(batch_size), p=self._weights())
        return [self._next_problem(self._categories[index]) for index in drawn]

    def probabilities(self) -> dict[str, float]:
        """Return the probability with which the next `sample` call draws each category."""
        return dict(zip(self._categories, self._weights().tolist(), strict=True))

    def update(self, category: str, advantages: Sequence[float]) -> None:
        """Record the advantages of `category`'s rollouts in this step. Only their absolute values matter.

        Call this once per category per step, with all of that category's rollouts. SEC applies one TD(0) step per
        call, so splitting a step's rollouts over two calls would count the step twice.
        """
        self._require_known(category)
        magnitudes = np.abs(_finite_array(advantages, "advantages"))
        if magnitudes.size == 0:
            raise ValueError(f"no advantages given for category {category!r}; skip update for a category not sampled")
        self._counts[category] += int(magnitudes.size)
        self._observe(category, magnitudes)

    def update_from_rewards(self, category: str, rewards: Sequence[float], group_size: int) -> list[float]:
        """Turn consecutive groups of rewards into GRPO advantages (`grpo_advantages`), update, return them."""
        self._require_known(category)
        advantages = grpo_advantages(rewards, group_size)
        self.update(category, advantages)
        return advantages

    def state_dict(self) -> dict[str, Any]:
        """Return everything needed to resume exactly, as JSON-serialisable data."""
        return {
            "method": self.method,
            "config": self.config.model_dump(mode="json"),
            "problems_sha256": _problems_digest(self._problems),
            "rng": self._rng.bit_generator.state,
            "orders": {c: list(order) for c, order in self._orders.items()},
            "positions": dict(self._positions),
            "counts": dict(self._counts),
            **self._arm_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` taken from a sampler with the same problems and config.

        The whole state is validated before anything changes, so a rejected state leaves this sampler as it was.
        """
        self._check_state(state)
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = dict(state["rng"])
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"state['rng'] is not a PCG64 state: {exc}") from None
        self._restore_arms(state)  # validates before it assigns, and is the last step that can fail
        self._rng = rng
        self._orders = {c: [int(i) for i in state["orders"][c]] for c in self._categories}
        self._positions = {c: int(state["positions"][c]) for c in self._categories}
        self._counts = {c: int(state["counts"][c]) for c in self._categories}

    def _check_state(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping):
            raise ValueError(f"a sampler state must be a mapping from state_dict(), got {type(state).__name__}")
        if state.get("method") != self.method:
            raise ValueError(f"state is for method {state.get('method')!r}, but this sampler is {self.method!r}")
        try:
            saved_config = self.config_class.model_validate(state.get("config"))
        except ValidationError as exc:
            raise ValueError(f"state['config'] is not a valid {self.config_class.__name__}: {exc}") from None
        if saved_config != self.config:
            changed = {k: v for k, v in saved_config.model_dump().items() if getattr(self.config, k) != v}
            raise ValueError(f"state was saved with a different config {changed}; build the sampler with that config")
        if state.get("problems_sha256") != _problems_digest(self._problems):
            raise ValueError("state was saved over a different set of problems or categories; it cannot resume here")
        for key in ("orders", "positions", "counts"):
            if not isinstance(state.get(key), Mapping) or set(state[key]) != set(self._categories):
                raise ValueError(f"state[{key!r}] must map exactly these categories: {list(self._categories)}")
        for category, ids in self._problems.items():
            order, position, count = (state[key][category] for key in ("orders", "positions", "counts"))
            if not all(isinstance(i, int) for i in order) or sorted(order) != list(range(len(ids))):
                raise ValueError(f"state['orders'][{category!r}] is not a permutation of its {len(ids)} problems")
            if not isinstance(position, int) or not 0 <= position <= len(ids):
                raise ValueError(f"state['positions'][{category!r}] = {position!r} is not in 0..{len(ids)}")
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"state['counts'][{category!r}] = {count!r} is not a count")

    def _next_problem(self, category: str) -> str:
        if self._positions[category] == len(self._orders[category]):
            # The category has served every problem once: reshuffle it for a new pass.
            self._orders[category] = self._rng.permutation(len(self._orders[category])).tolist()
            self._positions[category] = 0
        index = self._orders[category][self._positions[category]]
        self._positions[category] += 1
        return self._problems[category][index]

    def _require_known(self, category: str) -> None:
        if category not in self._problems:
            raise ValueError(f"unknown category {category!r};" + did_you_mean(str(category), self._categories))

    @abstractmethod
    def _reset_arms(self) -> None:
        """Set every category's bandit statistics to their initial values."""

    @abstractmethod
    def _weights(self) -> np.ndarray:
        """Return category probabilities aligned with `self._categories`."""

    @abstractmethod
    def _observe(self, category: str, magnitudes: np.ndarray) -> None:
        """Fold one step's |advantage| values (non-empty and finite) into `category`'s statistics."""

    @abstractmethod
    def _arm_state(self) -> dict[str, Any]:
        """Return the bandit statistics as JSON-serialisable data."""

    @abstractmethod
    def _restore_arms(self, state: Mapping[str, Any]) -> None:
        """Replace the bandit statistics with those in `state`; raise `ValueError`, changing nothing, if invalid."""


def _finite_array(values: Sequence[float], name: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] = {array[bad[0]]} is not finite")
    return array


def _validated_problems(problems: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    if not isinstance(problems, Mapping) or not problems:
        raise ConfigError(f"problems must be a non-empty mapping of category -> problem ids, got {problems!r}")
    bad_names = [c for c in problems if not isinstance(c, str) or not c]
    if bad_names:
        raise ConfigError(f"category names must be non-empty strings, got {bad_names!r}")
    owner: dict[str, str] = {}
    validated = {}
    for category in sorted(problems):
        ids = problems[category]
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise ConfigError(f"category {category!r} must list problem ids, got {ids!r}")
        if not ids:
            raise ConfigError(f"category {category!r} has no problems; drop it or give it problems")
        for problem_id in ids:
            if not isinstance(problem_id, str):
                raise ConfigError(f"category {category!r} holds a problem id that is not a string: {problem_id!r}")
            if problem_id in owner:
                first = owner[problem_id]
                where = f"twice in {category!r}" if first == category else f"in both {first!r} and {category!r}"
                raise ConfigError(f"problem id {problem_id!r} is listed {where}; list every problem exactly once")
            owner[problem_id] = category
        validated[category] = tuple(sorted(ids))
    return validated


def _problems_digest(problems: Mapping[str, tuple[str, ...]]) -> str:
    # Orders are stored as indices into the sorted ids, so a resume must see exactly the same problems.
    return hashlib.sha256(json.dumps(problems, sort_keys=True).encode()).hexdigest()
