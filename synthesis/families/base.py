"""The procedural family contract: seeded generation with a monotone difficulty knob, and exact scoring."""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from engines.errors import ConfigError
from synthesis.problem import Problem, Verdict
from synthesis.registry import Registry

MAX_INTEGER_ANSWER_CHARS = 200
_INTEGER = re.compile(r"(?P<sign>[+-]?)\s*(?P<digits>\d+)(?:\.0+)?", re.ASCII)
_GROUPING = re.compile(r"(?<=\d)[, ](?=\d{3}(?:\D|$))", re.ASCII)


def item_rng(family: str, seed: int, index: int) -> random.Random:
    """A generator for one item, seeded from a hash of (family, seed, index) so that nearby seeds never overlap."""
    digest = hashlib.sha256(f"{family}\x00{seed}\x00{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Family(ABC):
    """A problem generator with exact answers. Subclasses set `name` and the valid `difficulties`."""

    name: str = ""
    difficulties: tuple[int, ...] = ()
    # The skills every problem of the family exercises, main skill first (ids of
    # `synthesis.skill_vocabulary.KNOWN_SKILLS`): known labels that need no model call (methods §7). Empty means
    # the family's name is its one skill.
    skills: tuple[str, ...] = ()
    config: Any  # a frozen `<Name>Config` dataclass with at least `source: str`, set by the subclass

    @classmethod
    def skill_ids(cls) -> tuple[str, ...]:
        """The family's skill tags, main skill first (its name when it declares none)."""
        return cls.skills or (cls.name,)

    @abstractmethod
    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        """One problem at the given knob setting, using only `rng` for random choices."""

    @abstractmethod
    def score(self, problem: Problem, answer: str) -> Verdict:
        """Check a final answer (already extracted from a completion) against the problem's gold answer."""

    def perturbed_answer(self, problem: Problem) -> str:
        """A deterministic answer that is well-formed but wrong: the contract test expects `score` to say "wrong".

        The default adds one to an integer gold answer; families whose answers are not integers must override it.
        """
        if re.fullmatch(r"[+-]?\d+", problem.answer):
            return str(int(problem.answer) + 1)
        raise NotImplementedError(
            f"family {self.name!r}: gold answer {problem.answer[:80]!r} is not an integer; override perturbed_answer"
        )

    def make_problem(
        self,
        difficulty: int,
        *,
        question: str,
        answer: str,
        solution: str | None = None,
        metadata: dict[str, object] | None = None,
    ) -> Problem:
        """A problem of this family at `difficulty`, with the source, family and reference filled in."""
        return Problem.create(
            source=self.config.source,
            family=self.name,
            question=question,
            answer=answer,
            source_ref=f"{self.name}:level{difficulty}",
            solution=solution,
            difficulty_knob=difficulty,
            metadata=metadata,
        )

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


def parse_integer(answer: str) -> int | None:
    """An integer final answer ("42", "-7", "1,234", "$15", "42.0"), or None when the text is not one.

    Bounded: longer inputs are refused before any regular expression or `int()` runs on them.
    """
    if len(answer) > MAX_INTEGER_ANSWER_CHARS:
        return None
    text = answer.replace("\\$", "").replace("$", "").strip().removesuffix(".").strip()
    match = _INTEGER.fullmatch(_GROUPING.sub("", text))
    if match is None:
        return None
    return int(match.group("sign") + match.group("digits"))


def score_integer(problem: Problem, answer: str) -> Verdict:
    """The verdict for an integer-valued family: exact integer equality with the gold answer."""
    value = parse_integer(answer)
    if value is None:
        return Verdict("unparseable", f"not an integer: {answer[:80]!r}", None)
    if value == int(problem.answer):
        return Verdict("correct", "exact integer match", str(value))
    return Verdict("wrong", f"{value} != {problem.answer}", str(value))
