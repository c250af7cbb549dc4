"""Templated story problems (collections, money, ages) whose answer takes exactly `difficulty` reasoning steps.

Knob: the number of steps, 1-5. Each step is one sentence that changes the tracked quantity (buy packs, give
away, share equally, earn by the hour, spend half) or, for ages, one more person related to the previous one;
from level 3 the age facts are given in shuffled order. Every step keeps the quantity a non-negative integer
(shares divide exactly), and the value is tracked while the story is written, never parsed back from it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from synthesis.families.base import FAMILIES, Family, score_integer
from synthesis.problem import Problem, Verdict

Step = Callable[[random.Random, int, str, str], tuple[str, int] | None]

_NAMES = ("Maya", "Omar", "Lena", "Ravi", "Sofia", "Tom", "Aiko", "Ben", "Chloe", "Diego", "Ema", "Finn")
_ITEMS = ("apples", "stickers", "marbles", "books", "shells", "stamps", "cards", "pencils")


@dataclass(frozen=True, slots=True)
class WordProblemsConfig:
    """`source` is written on every problem; the difficulty knob (1-5) is the number of reasoning steps."""

    source: str = "procedural"


def _gain(rng: random.Random, value: int, name: str, item: str) -> tuple[str, int]:
    n = rng.randint(3, 25)
    return f"Then {name} finds {n} more {item}.", value + n


def _give(rng: random.Random, value: int, name: str, item: str) -> tuple[str, int] | None:
    if value < 4:
        return None
    n = rng.randint(1, value - 1)
    return f"{name} gives {n} {item} to a friend.", value - n


def _packs(rng: random.Random, value: int, name: str, item: str) -> tuple[str, int]:
    packs, each = rng.randint(2, 6), rng.randint(3, 12)
    return f"{name} buys {packs} packs with {each} {item} in each pack.", value + packs * each


def _share(rng: random.Random, value: int, name: str, item: str) -> tuple[str, int] | None:
    parts = [k for k in range(2, 7) if value % k == 0 and value // k >= 2]
    if not parts:
        return None
    k = rng.choice(parts)
    return f"{name} splits the {item} into {k} equal piles and keeps only one pile.", value // k


def _multiply(rng: random.Random, value: int, name: str, item: str) -> tuple[str, int] | None:
    if value > 150:
        return None
    factor = rng.choice([2, 3])
    return f"Then the number of {item} {name} has {'doubles' if factor == 2 else 'triples'}.", value * factor


def _earn(rng: random.Random, value: int, name: str, _: str) -> tuple[str, int]:
    rate, hours = rng.randint(6, 20), rng.randint(2, 8)
    return f"{name} earns ${rate} per hour for {hours} hours.", value + rate * hours


def _buy(rng: random.Random, value: int, name: str, _: str) -> tuple[str, int] | None:
    count, price = rng.randint(2, 6), rng.randint(2, 15)
    if count * price > value:
        return None
    return f"{name} buys {count} notebooks at ${price} each.", value - count * price


def _gift(rng: random.Random, value: int, name: str, _: str) -> tuple[str, int]:
    gift = rng.randint(5, 50)
    return f"{name} receives ${gift} as a gift.", value + gift


def _half(rng: random.Random, value: int, name: str, _: str) -> tuple[str, int] | None:
    if value % 2 or value < 4:
        return None
    return f"{name} spends half of the money on a concert ticket.", value // 2


_COLLECTION_STEPS: tuple[Step, ...] = (_gain, _give, _packs, _share, _multiply)
_MONEY_STEPS: tuple[Step, ...] = (_earn, _buy, _gift, _half)


def _chain(
    rng: random.Random, steps: int, start: int, name: str, item: str, ops: tuple[Step, ...]
) -> tuple[list[str], list[int]]:
    """`steps` sentences and the tracked value after each (starting with `start`); a step that does not fit the
    current value (giving away more than there is, an uneven share) is skipped and another one drawn."""
    sentences, values = [], [start]
    while len(sentences) < steps:
        outcome = rng.choice(ops)(rng, values[-1], name, item)
        if outcome is not None:
            sentences.append(outcome[0])
            values.append(outcome[1])
    return sentences, values


def _collection(rng: random.Random, steps: int) -> tuple[str, list[int]]:
    name, item, start = rng.choice(_NAMES), rng.choice(_ITEMS), rng.randint(5, 40)
    sentences, values = _chain(rng, steps, start, name, item, _COLLECTION_STEPS)
    story = " ".join([f"{name} has {start} {item}.", *sentences])
    return f"{story} How many {item} does {name} have now? Give the answer as a single integer.", values


def _money(rng: random.Random, steps: int) -> tuple[str, list[int]]:
    name, start = rng.choice(_NAMES), rng.randint(10, 100)
    sentences, values = _chain(rng, steps, start, name, "", _MONEY_STEPS)
    story = " ".join([f"{name} has ${start}.", *sentences])
    return f"{story} How many dollars does {name} have now? Give the answer as a single integer (no units).", values


def _relation(rng: random.Random, age: int, person: str, other: str) -> tuple[str, int]:
    options = [("older", rng.randint(2, 9))]
    if age > 12:
        options.append(("younger", rng.randint(2, min(9, age - 3))))
    if age <= 30:
        options.append(("twice", 2))
    if age % 2 == 0 and age >= 8:
        options.append(("half", 2))
    kind, k = rng.choice(options)
    if kind == "older":
        return f"{person} is {k} years older than {other}.", age + k
    if kind == "younger":
        return f"{person} is {k} years younger than {other}.", age - k
    if kind == "twice":
        return f"{person} is twice as old as {other}.", age * 2
    return f"{person} is half as old as {other}.", age // 2


def _ages(rng: random.Random, steps: int) -> tuple[str, list[int]]:
    people = rng.sample(_NAMES, steps + 1)
    ages = [rng.randint(5, 20)]
    facts = [f"{people[0]} is {ages[0]} years old."]
    for other, person in pairwise(people):
        fact, age = _relation(rng, ages[-1], person, other)
        facts.append(fact)
        ages.append(age)
    if steps >= 3:
        rng.shuffle(facts)
    return f"{' '.join(facts)} How old is {people[-1]}? Give the answer in years as a single integer.", ages


_THEMES = (_collection, _money, _ages)


@FAMILIES.register("word_problems")
class WordProblemsFamily(Family):
    name = "word_problems"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("word_problems", "arithmetic")

    def __init__(self, config: WordProblemsConfig | None = None) -> None:
        self.config = config or WordProblemsConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        theme = rng.choice(_THEMES)
        question, values = theme(rng, difficulty)
        return self.make_problem(
            difficulty,
            question=question,
            answer=str(values[-1]),
            solution=" -> ".join(str(v) for v in values),
            metadata={"theme": theme.__name__.lstrip("_"), "steps": difficulty},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        return score_integer(problem, answer)
