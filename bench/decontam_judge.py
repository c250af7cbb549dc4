"""The judge half of the decontamination bench: judged pairs at the loosest setting, read off for any (k, floor).

The judge sees what production shows it (`scoring.curation.decontam.decontaminate` with the judge on): each
problem no cheaper detector flagged (and that is not a bare expression), against each benchmark's `k` nearest
items by embedding cosine at or above the floor. Asking once at the largest k and the lowest floor answers every
smaller k and higher floor: a pair's rank and cosine say whether that setting would have asked it, and the
verdict does not depend on the setting (greedy decoding, the same prompt; the engine cache holds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engines import Engine
from scoring.curation.decontam import Benchmark, is_bare_expression
from scoring.curation.judge import JudgeConfig, judge_pairs, nearest_items
from scoring.curation.similarity import Embed, embedding_matrix


@dataclass(frozen=True, slots=True)
class JudgedPair:
    """A judged (problem, item) pair: the item's rank among the problem's nearest of its benchmark (0: nearest)."""

    bench: str
    item_id: str
    rank: int
    cosine: float
    verdict: str
    reason: str


def judge_pool(
    pool: Sequence[dict[str, str]],
    skip: set[str],
    benchmarks: Sequence[Benchmark],
    embed: Embed,
    engine: Engine,
    loosest: JudgeConfig,
) -> dict[str, list[JudgedPair]]:
    """problem_id -> its judged pairs at `loosest` (k, min_cosine), for the problems not in `skip`."""
    ids = [p["problem_id"] for p in pool]
    questions = [p["question"] for p in pool]
    pool_vectors = embedding_matrix(questions, embed)
    chosen = [i for i, pid in enumerate(ids) if pid not in skip and not is_bare_expression(questions[i])]
    judged: dict[str, list[JudgedPair]] = {}
    for bench in benchmarks:
        bench_vectors = embedding_matrix(bench.questions, embed)
        rows = np.asarray(chosen, dtype=np.int64)
        nearest = nearest_items(pool_vectors[rows], bench_vectors, loosest.k, loosest.min_cosine)
        pairs = [(int(rows[r]), item, cos) for r, item, cos in nearest]
        ranks: dict[int, int] = {}
        ranked = []
        for problem, _, _ in pairs:  # nearest_items lists each problem's items most similar first
            ranked.append(ranks.get(problem, 0))
            ranks[problem] = ranked[-1] + 1
        for judgement, rank in zip(
            judge_pairs(engine, loosest, questions, bench.questions, pairs), ranked, strict=True
        ):
            judged.setdefault(ids[judgement.problem], []).append(
                JudgedPair(
                    bench.name,
                    bench.item_ids[judgement.item],
                    rank,
                    judgement.cosine,
                    judgement.verdict,
                    judgement.reason,
                )
            )
    return judged


def judge_says_yes(pairs: Sequence[JudgedPair], k: int, floor: float, own: tuple[str, str] | None = None) -> bool:
    """Whether the setting (k, floor) flags the problem: a "yes" on a pair it would have asked about (naming
    `own` = (benchmark, item id) when given)."""
    return any(
        p.verdict == "yes" and p.rank < k and p.cosine >= floor and (own is None or (p.bench, p.item_id) == own)
        for p in pairs
    )


def asked(pairs: Sequence[JudgedPair], k: int, floor: float) -> int:
    """Pairs the setting (k, floor) sends to the judge (its model calls)."""
    return sum(p.rank < k and p.cosine >= floor for p in pairs)
