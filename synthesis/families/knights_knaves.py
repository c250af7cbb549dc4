"""Knights (always tell the truth) and knaves (always lie): who is which, from one statement per inhabitant.

Knob: the number of inhabitants is difficulty + 1 (2-6), and higher levels add statement kinds (and/or at 2,
exactly-one and if-then at 3, "exactly k of us" at 5). Statements are drawn at random and a puzzle is kept only
when brute force over all 2^n assignments finds exactly one consistent assignment, so the gold answer is unique.
Canonical answer: "Alice: knight, Bob: knave" in the order the inhabitants are introduced.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

from synthesis.families.base import FAMILIES, Family
from synthesis.problem import Problem, Verdict

MAX_ANSWER_CHARS = 500
MAX_ATTEMPTS = 2000
_NAMES = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Oscar", "Peggy")
_ROLES = {"knight": True, "knights": True, "knave": False, "knaves": False}
_FILLER = frozenset({"is", "are", "a", "an", "and", "both", "the"})
_WORD = re.compile(r"[A-Za-z]+|[^\sA-Za-z,;:.=()\[\]*\"'/|\-–—]")  # words, or one unexpected symbol
_PAIR_KINDS = ("and", "or", "xor", "if")
_KINDS = {
    1: ("is", "same", "diff"),
    2: ("is", "same", "diff", "and", "or"),
    3: ("is", "same", "diff", "and", "or", "xor", "if"),
    4: ("is", "same", "diff", "and", "or", "xor", "if"),
    5: ("is", "same", "diff", "and", "or", "xor", "if", "count"),
}

# A statement: (kind, a, b, role) where a, b are inhabitant indexes and role is True for "knight".
Statement = tuple[str, int, int, bool]


@dataclass(frozen=True, slots=True)
class KnightsKnavesConfig:
    """`source` is written on every problem; the difficulty knob (1-5) sets inhabitants and statement kinds."""

    source: str = "procedural"


def _holds(statement: Statement, speaker: int, world: tuple[bool, ...]) -> bool:
    kind, a, b, role = statement
    if kind == "is":
        return world[a] == role
    if kind == "same":
        return world[a] == world[speaker]
    if kind == "diff":
        return world[a] != world[speaker]
    if kind == "and":
        return world[a] == role and world[b] == role
    if kind == "or":
        return world[a] == role or world[b] == role
    if kind == "xor":
        return world[a] != world[b]
    if kind == "if":
        return not world[a] or world[b] == role
    return sum(world) == a  # "count": exactly a of us are knights


def _solutions(statements: list[Statement]) -> list[tuple[bool, ...]]:
    """Every assignment in which each knight's statement is true and each knave's is false."""
    return [
        world
        for world in itertools.product((True, False), repeat=len(statements))
        if all(_holds(s, speaker, world) == world[speaker] for speaker, s in enumerate(statements))
    ]


def _random_statement(rng: random.Random, speaker: int, n: int, kinds: tuple[str, ...]) -> Statement:
    kind, role = rng.choice(kinds), rng.random() < 0.5
    if kind in _PAIR_KINDS and n < 3:
        kind = "is"
    if kind == "count":
        return ("count", rng.randint(0, n), -1, True)
    if kind in _PAIR_KINDS:
        a, b = rng.sample(range(n), 2)
        return (kind, a, b, role)
    return (kind, rng.choice([i for i in range(n) if i != speaker]), -1, role)


def _name(index: int, speaker: int, names: list[str]) -> str:
    return "I" if index == speaker else names[index]


def _verb(index: int, speaker: int) -> str:
    return "am" if index == speaker else "is"


def _render(statement: Statement, speaker: int, names: list[str]) -> str:
    kind, a, b, role = statement
    word = "knight" if role else "knave"
    if kind == "count":
        return f"Exactly {a} of the {len(names)} of us {'is a knight' if a == 1 else 'are knights'}."
    subject = _name(a, speaker, names)
    if kind == "is":
        return f"{subject} is a {word}."
    if kind == "same":
        return f"{subject} and I are the same kind."
    if kind == "diff":
        return f"{subject} and I are different kinds."
    other = _name(b, speaker, names)
    pair = f"{other} and {subject}" if a == speaker else f"{subject} and {other}"
    if kind == "and":
        return f"{pair} are both {word}s."
    if kind == "or":
        return f"At least one of {pair} is a {word}."
    if kind == "xor":
        return f"Exactly one of {pair} is a knight."
    return f"If {subject} {_verb(a, speaker)} a knight, then {other} {_verb(b, speaker)} a {word}."


def format_assignment(names: list[str], world: tuple[bool, ...]) -> str:
    return ", ".join(f"{name}: {'knight' if role else 'knave'}" for name, role in zip(names, world, strict=True))


def parse_assignment(answer: str, names: list[str]) -> tuple[bool, ...] | str:
    """Roles in `names` order from "Alice: knight, Bob: knave", "bob is a knave; alice is a knight",
    "Alice and Bob are knights" or a bare "Knight, Knave" list in introduction order; else a reason."""
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer longer than {MAX_ANSWER_CHARS} chars"
    index = {name.lower(): pos for pos, name in enumerate(names)}
    roles: dict[int, bool] = {}
    bare: list[bool] = []
    pending: list[int] = []
    for token in _WORD.findall(answer.lower()):
        if token in index:
            pending.append(index[token])
        elif token in _ROLES:
            if not pending:
                bare.append(_ROLES[token])
            for person in pending:
                if roles.get(person, _ROLES[token]) != _ROLES[token]:
                    return f"{names[person]} is given both roles"
                roles[person] = _ROLES[token]
            pending = []
        elif token not in _FILLER:
            return f"unexpected word {token[:20]!r}"
    if pending:
        return f"no role given for {names[pending[0]]}"
    if bare and not roles and len(bare) == len(names):
        return tuple(bare)
    if bare or len(roles) != len(names):
        return f"expected one role for each of {', '.join(names)}"
    return tuple(roles[pos] for pos in range(len(names)))


@FAMILIES.register("knights_knaves")
class KnightsKnavesFamily(Family):
    name = "knights_knaves"
    difficulties = (1, 2, 3, 4, 5)
    skills = ("logic", "case_analysis")

    def __init__(self, config: KnightsKnavesConfig | None = None) -> None:
        self.config = config or KnightsKnavesConfig()

    def generate(self, rng: random.Random, difficulty: int) -> Problem:
        n = difficulty + 1
        names = rng.sample(_NAMES, n)
        for _ in range(MAX_ATTEMPTS):
            statements = [_random_statement(rng, speaker, n, _KINDS[difficulty]) for speaker in range(n)]
            solutions = _solutions(statements)
            if len(solutions) == 1:
                break
        else:
            raise RuntimeError(f"no puzzle with a unique solution in {MAX_ATTEMPTS} attempts ({n} inhabitants)")
        lines = [f'{names[i]} says: "{_render(s, i, names)}"' for i, s in enumerate(statements)]
        question = (
            f"On an island, knights always tell the truth and knaves always lie. You meet {n} inhabitants: "
            f"{', '.join(names)}.\n" + "\n".join(lines) + "\nWho is a knight and who is a knave? "
            f"Answer in the form 'Name: knight, Name: knave', listing everyone in the order {', '.join(names)}."
        )
        answer = format_assignment(names, solutions[0])
        return self.make_problem(
            difficulty,
            question=question,
            answer=answer,
            metadata={"names": names, "statements": [list(s) for s in statements]},
        )

    def score(self, problem: Problem, answer: str) -> Verdict:
        names = [part.split(":")[0] for part in problem.answer.split(", ")]
        gold = parse_assignment(problem.answer, names)
        parsed = parse_assignment(answer, names)
        if isinstance(gold, str):
            return Verdict("error", f"gold answer {problem.answer!r}: {gold}", None)
        if isinstance(parsed, str):
            return Verdict("unparseable", f"{parsed}: {answer[:80]!r}", None)
        extracted = format_assignment(names, parsed)
        if parsed == gold:
            return Verdict("correct", "every role matches", extracted)
        wrong = [name for name, p, g in zip(names, parsed, gold, strict=True) if p != g]
        return Verdict("wrong", f"wrong role for {', '.join(wrong)}", extracted)

    def perturbed_answer(self, problem: Problem) -> str:
        name, role = problem.answer.split(", ")[0].split(": ")
        flipped = "knave" if role == "knight" else "knight"
        return ", ".join([f"{name}: {flipped}", *problem.answer.split(", ")[1:]])
