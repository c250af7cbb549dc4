"""The procedural family contract: seeded generation with a monotone difficulty knob, and exact scoring."""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable

from engines.errors import ConfigError
from synthesis.problem import Problem, Verdict
from synthesis.registry import Registry


def item_rng(family: str, seed: int, index: int) -> random.Random:
    """A generator for one item, seeded from a hash of (family, seed, index) so that nearby seeds never overlap."""
    digest = hashlib.sha256(f"{family}\x00{seed}\x00{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Family(ABC):
    """A problem generator with exact answers. Subclasses set `name` and the valid `difficulties`."""

    name: str = ""
    difficulties: tuple[int, ...] = ()

    @abstractmethod
    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        """One problem at the given knob setting, using only `rng` for random choices."""

    @abstractmethod
    def score(self, problem: Problem, answer: str) -> Verdict:
        """Check a final answer (already extracted from a completion) against the problem's gold answer."""

    def sample(self, seed: int, difficulties: Iterable[int], per_level: int) -> list[Problem]:
        """`per_level` problems at each knob setting; the same seed always gives the same items."""
        problems = []
        index = 0
        for difficulty in difficulties:
            if difficulty not in self.difficulties:
                raise ConfigError(
                    f"family {self.name!r} has no difficulty {difficulty!r}; allowed: {list(self.difficulties)}"
                )
            for _ in range(per_level):
                problems.append(self.generate(item_rng(self.name, seed, index), difficulty))
                index += 1
        return problems


FAMILIES: Registry[Family] = Registry("problem family", Family)
