"""Counting problems: selections, orderings, arrangements with repeated letters and restricted arrangements.

Knob: 1 = one factorial, choice or ordering with n ≤ 9; 2 = the same with n up to 20, plus circular seating;
3 = two-step counts (repeated letters, identical items into boxes, choosing from two groups); 4 = counts with a
restriction (at least one, together, apart); 5 = three-or-more-step counts (at least two, minimum per box,
committee with officers). Every count is computed with `math.comb` / `math.perm` / `math.factorial`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from math import comb, factorial, perm, prod

from synthesis.families.base import FAMILIES, Family, score_integer
from synthesis.problem import Problem, Verdict

_FORMAT = "Give the answer as a single integer."

_ORDERINGS = (
    "{n} people stand in a line",
    "{n} different books be arranged on a shelf",
    "{n} songs be played one after another",
    "{n} different flags be hung in a row",
)
_SELECTIONS = (
    "a team of {k} be chosen from {n} people",
    "{k} toppings be chosen from {n} different toppings",
    "{k} books be picked from a shelf of {n} different books",
    "a group of {k} be chosen from {n} students",
)
_RACES = (
    "{n} runners run a race.",
    "{n} swimmers swim a race.",
    "{n} horses run a race.",
    "{n} teams play a tournament.",
)

_CIRCLES = ("people sit around a round table", "children stand in a circle", "friends sit around a campfire")
_PEOPLE = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun")
_OFFICERS = ("a chair and a secretary", "a captain and a vice-captain", "a president and a treasurer")

Template = Callable[[random.Random], tuple[str, int, str]]


@dataclass(frozen=True, slots=True)
class CombinatoricsConfig:
    """`source` is written on every problem; the difficulty knob (1-5) picks the templates in `_LEVELS`."""

    source: str = "procedural"


def _line_up(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randint(4, 9)
    scene = rng.choice(_ORDERINGS).format(n=n)
    return f"In how many different orders can {scene}?", factorial(n), f"{n}!"


def _choose(rng: random.Random, n: int, k: int) -> tuple[str, int, str]:
    scene = rng.choice(_SELECTIONS).format(n=n, k=k)
    return f"In how many ways can {scene}?", comb(n, k), f"C({n}, {k})"


def _places(rng: random.Random, n: int, k: int) -> tuple[str, int, str]:
    scene = rng.choice(_RACES).format(n=n)
    return f"{scene} In how many ways can the first {k} places be filled (no ties)?", perm(n, k), f"P({n}, {k})"


def _choose_small(rng: random.Random) -> tuple[str, int, str]:
    return _choose(rng, rng.randint(5, 10), rng.randint(2, 3))


def _places_small(rng: random.Random) -> tuple[str, int, str]:
    return _places(rng, rng.randint(4, 9), rng.randint(2, 3))


def _choose_large(rng: random.Random) -> tuple[str, int, str]:
    return _choose(rng, rng.randint(10, 20), rng.randint(3, 5))


def _places_large(rng: random.Random) -> tuple[str, int, str]:
    return _places(rng, rng.randint(8, 15), rng.randint(3, 4))


def _round_table(rng: random.Random) -> tuple[str, int, str]:
    n, scene = rng.randint(5, 11), rng.choice(_CIRCLES)
    question = f"In how many ways can {n} {scene}, if rotations count as the same arrangement?"
    return question, factorial(n - 1), f"({n} - 1)!"


def _repeated_letters(rng: random.Random) -> tuple[str, int, str]:
    letters = rng.sample("ABCDEFGHKLMNPRST", 4)
    repeats = [rng.randint(2, 3)] + [rng.randint(1, 3) for _ in letters[1:]]
    word = "".join(letter * count for letter, count in zip(letters, repeats, strict=True))
    word = "".join(rng.sample(word, len(word)))
    counts = Counter(word)
    value = factorial(len(word)) // prod(factorial(c) for c in counts.values())
    denominator = " * ".join(f"{c}!" for c in counts.values() if c > 1) or "1"
    question = f"How many distinct strings can be made by rearranging all the letters of {word}?"
    return question, value, f"{len(word)}! / ({denominator})"


def _boxes(rng: random.Random) -> tuple[str, int, str]:
    n, k = rng.randint(5, 12), rng.randint(3, 5)
    question = f"In how many ways can {n} identical balls be put into {k} distinct boxes (boxes may be empty)?"
    return question, comb(n + k - 1, k - 1), f"C({n} + {k} - 1, {k} - 1)"


def _two_groups(rng: random.Random) -> tuple[str, int, str]:
    a, b = rng.randint(5, 10), rng.randint(5, 10)
    i, j = rng.randint(2, 3), rng.randint(2, 3)
    question = (
        f"A club has {a} juniors and {b} seniors. In how many ways can a team of {i} juniors and {j} seniors be chosen?"
    )
    return question, comb(a, i) * comb(b, j), f"C({a}, {i}) * C({b}, {j})"


def _at_least_one(rng: random.Random) -> tuple[str, int, str]:
    a, b, k = rng.randint(5, 10), rng.randint(3, 8), rng.randint(3, 5)
    question = f"A club has {a} juniors and {b} seniors. How many teams of {k} members include at least one senior?"
    return question, comb(a + b, k) - comb(a, k), f"C({a + b}, {k}) - C({a}, {k})"


def _pair(rng: random.Random) -> str:
    first, second = rng.sample(_PEOPLE, 2)
    return f"{first} and {second}"


def _together(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randint(5, 10)
    question = (
        f"{n} people, including {_pair(rng)}, stand in a line. In how many orders are those two next to each other?"
    )
    return question, 2 * factorial(n - 1), f"2 * ({n} - 1)!"


def _apart(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randint(5, 10)
    question = (
        f"{n} people, including {_pair(rng)}, stand in a line. In how many orders are those two NOT next to each other?"
    )
    return question, factorial(n) - 2 * factorial(n - 1), f"{n}! - 2 * ({n} - 1)!"


def _at_least_two(rng: random.Random) -> tuple[str, int, str]:
    a, b, k = rng.randint(6, 12), rng.randint(4, 9), rng.randint(4, 6)
    question = f"A club has {a} juniors and {b} seniors. How many teams of {k} members include at least two seniors?"
    value = comb(a + b, k) - comb(a, k) - b * comb(a, k - 1)
    return question, value, f"C({a + b}, {k}) - C({a}, {k}) - {b} * C({a}, {k - 1})"


def _boxes_minimum(rng: random.Random) -> tuple[str, int, str]:
    k, r = rng.randint(3, 5), rng.randint(1, 2)
    n = k * r + rng.randint(4, 10)
    question = (
        f"In how many ways can {n} identical balls be put into {k} distinct boxes so that every box gets at least {r}?"
    )
    return question, comb(n - k * r + k - 1, k - 1), f"C({n - k * r} + {k} - 1, {k} - 1)"


def _committee_officers(rng: random.Random) -> tuple[str, int, str]:
    n, k, roles = rng.randint(10, 18), rng.randint(4, 6), rng.choice(_OFFICERS)
    question = (
        f"From {n} people, a committee of {k} is chosen, and then {roles} (two different people) are picked "
        "from the committee members. How many different outcomes are possible?"
    )
    return question, comb(n, k) * k * (k - 1), f"C({n}, {k}) * {k} * {k - 1}"


_LEVELS: dict[int, tuple[Template, ...]] = {
    1: (_line_up, _choose_small, _places_small),
    2: (_choose_large, _places_large, _round_table),
    3: (_repeated_letters, _boxes, _two_groups),
    4: (_at_least_one, _together, _apart),
    5: (_at_least_two, _boxes_minimum, _committee_officers),
}


@FAMILIES.register("combinatorics")
class CombinatoricsFamily(Family):
    name = "combinatorics"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("combinatorics",)

    def __init__(self, config: CombinatoricsConfig | None = None) -> None:
        self.config = config or CombinatoricsConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        template = rng.choice(_LEVELS[difficulty])
        question, value, formula = template(rng)
        return self.make_problem(
            difficulty,
            question=f"{question} {_FORMAT}",
            answer=str(value),
            solution=f"{formula} = {value}",
            metadata={"template": template.__name__.lstrip("_")},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        return score_integer(problem, answer)
