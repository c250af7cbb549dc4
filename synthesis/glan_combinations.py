"""GLAN's concept combinations (methods §9; Li et al., arXiv 2402.13064, §2.4): the key concepts one homework
question is written from — 1–5 concepts of one class session, or 2–5 spanning two sessions of a syllabus — drawn
uniformly and without repeats from a seeded generator. The prompts and parsers live in `synthesis/glan.py`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from math import comb

from synthesis.glan import MAX_CONCEPTS, Course, derive_seed


def single_session_count(m: int, max_size: int = MAX_CONCEPTS) -> int:
    """Concept combinations of one session with `m` key concepts: Σ_{i=1..5} C(m, i) (31 for m = 5)."""
    return sum(comb(m, i) for i in range(1, max_size + 1))


def two_session_count(m1: int, m2: int, max_size: int = MAX_CONCEPTS) -> int:
    """Combinations of 2–5 concepts from two sessions that touch both:
    Σ_{i=2..5} C(m1+m2, i) − Σ_{i=2..5} C(m1, i) − Σ_{i=2..5} C(m2, i)."""
    return sum(comb(m1 + m2, i) - comb(m1, i) - comb(m2, i) for i in range(2, max_size + 1))


def single_session_combinations(m: int, max_size: int = MAX_CONCEPTS) -> Iterator[tuple[int, ...]]:
    """Every combination counted by `single_session_count`, as sorted concept indexes."""
    from itertools import combinations

    for size in range(1, max_size + 1):
        yield from combinations(range(m), size)


def two_session_combinations(
    m1: int, m2: int, max_size: int = MAX_CONCEPTS
) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Every combination counted by `two_session_count`, as (indexes in session 1, indexes in session 2)."""
    from itertools import combinations

    for size in range(2, max_size + 1):
        for picked in combinations(range(m1 + m2), size):
            first = tuple(i for i in picked if i < m1)
            second = tuple(i - m1 for i in picked if i >= m1)
            if first and second:
                yield first, second


@dataclass(frozen=True, slots=True)
class ConceptCombo:
    """Key concepts picked for one homework question: `picks` are (session position in the course, concept
    index in that session)."""

    course: int  # index into the course list the combos were sampled from
    picks: tuple[tuple[int, int], ...]

    @property
    def positions(self) -> tuple[int, ...]:
        return tuple(sorted({p for p, _ in self.picks}))

    def concepts(self, course: Course) -> list[str]:
        return [course.sessions[p].key_concepts[c] for p, c in self.picks]

    def session_numbers(self, course: Course) -> list[int]:
        return [course.sessions[p].idx for p in self.positions]


def _weighted_index(rng: random.Random, weights: Sequence[int]) -> int:
    return rng.choices(range(len(weights)), weights=weights, k=1)[0]


def _draw(
    rng: random.Random, course: int, positions: tuple[int, ...], sizes: Sequence[int], max_size: int
) -> ConceptCombo:
    """One combination, uniform over all combinations of these sessions (size first, by its count)."""
    if len(positions) == 1:
        (m,) = sizes
        size = 1 + _weighted_index(rng, [comb(m, i) for i in range(1, max_size + 1)])
        return ConceptCombo(course, tuple((positions[0], c) for c in sorted(rng.sample(range(m), size))))
    m1, m2 = sizes
    splits = [(a, i - a) for i in range(2, max_size + 1) for a in range(1, i)]
    a, b = splits[_weighted_index(rng, [comb(m1, a) * comb(m2, b) for a, b in splits])]
    picks = [(positions[0], c) for c in sorted(rng.sample(range(m1), a))]
    picks += [(positions[1], c) for c in sorted(rng.sample(range(m2), b))]
    return ConceptCombo(course, tuple(picks))


def sample_combinations(
    courses: Sequence[Course], n: int, two_session_share: float, seed: int, max_size: int = MAX_CONCEPTS
) -> list[ConceptCombo]:
    """`n` distinct concept combinations (§2.4), `round(n · two_session_share)` of them spanning two sessions.

    A unit (one session, or a pair of sessions of one course) is drawn uniformly, then a combination uniformly
    among that unit's combinations. Fewer come back when the syllabi hold fewer distinct combinations; the
    two-session share falls back to one-session questions when no course has two sessions with concepts."""
    rng = random.Random(derive_seed(seed, "combinations"))
    singles, pairs = [], []
    for ci, course in enumerate(courses):
        usable = [p for p, s in enumerate(course.sessions) if s.key_concepts]
        singles += [(ci, (p,)) for p in usable]
        pairs += [(ci, (p, q)) for i, p in enumerate(usable) for q in usable[i + 1 :]]

    def size(ci: int, p: int) -> int:
        return len(courses[ci].sessions[p].key_concepts)

    plan = []
    n_two = round(n * two_session_share) if pairs else 0
    for units, want, count in (
        (pairs, n_two, lambda ci, ps: two_session_count(size(ci, ps[0]), size(ci, ps[1]), max_size)),
        (singles, n - n_two, lambda ci, ps: single_session_count(size(ci, ps[0]), max_size)),
    ):
        plan.append((units, min(want, sum(count(ci, ps) for ci, ps in units))))
    chosen: dict[ConceptCombo, None] = {}
    for units, want in plan:
        drawn, attempts = 0, 0
        while drawn < want and attempts < 50 * want + 100:  # bounded: duplicates become rare draws near the cap
            attempts += 1
            ci, positions = units[rng.randrange(len(units))]
            combo = _draw(rng, ci, positions, [size(ci, p) for p in positions], max_size)
            if combo not in chosen:
                chosen[combo] = None
                drawn += 1
    return list(chosen)
