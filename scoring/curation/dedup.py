"""Staged deduplication of a problem pool: exact → MinHash-LSH → (TF-IDF or embedding), each stage on survivors.

Every stage is three pure steps — **signature** (a hash, a MinHash row, a vector per problem), **cluster**
(candidate pairs verified against the stage's threshold, joined by connected components) and **filter** (one
representative kept per cluster). Nothing is silently dropped: every dropped problem is a `DUPLICATES` row.

Rules a reader should know:
- Texts are compared after `comparable_text` (`normalize.py`: NFKC, case, whitespace, LaTeX spacing/sizing,
  number format).
- The stages' signatures live beside this module: `minhash.py` (character shingles, MinHash, LSH bands),
  `similarity.py` (TF-IDF and embedding rows); `pairs.py` joins their verified pairs into clusters.
- Clusters are connected components, so membership is transitive (A~B, B~C puts A and C together even when
  A and C alone would fall below the threshold); `similarity` in the table is the dropped problem's own
  similarity to its cluster's representative under the stage's measure, and may therefore be lower.
- The representative: a problem with a non-empty answer first, then the longest solution (the most
  informative), then the smallest problem_id (so the choice is deterministic).
- `skip_sources` (default `procedural`): seeded procedural items of one family differ only in numbers by
  design, so a pair of two such items is never an edge. Such an item can still be a duplicate of another
  source's item. When a cluster's representative is itself from a skip source, the other skip-source members
  of that cluster are kept too — they were never duplicates of each other, only of the same third item.
- `cluster_id` is the problem_id of the representative chosen by the stage that dropped the row; `kept_id`
  follows the chain to the problem that survives every stage (a representative of an early stage can be
  dropped by a later one), so every `kept_id` is in `kept_ids`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse

from scoring.curation.minhash import estimated_jaccard, lsh_bands, lsh_pairs, minhash_signatures
from scoring.curation.normalize import comparable_text
from scoring.curation.pairs import Pairs, cluster
from scoring.curation.similarity import Embed, embedding_matrix, row_cosine, similar_pairs, tfidf_matrix
from scoring.schemas import DUPLICATES

Method = Literal["exact", "minhash", "tfidf", "embedding"]
METHODS: tuple[Method, ...] = ("exact", "minhash", "tfidf", "embedding")


class DedupConfig(BaseModel):
    """Which stages run and their thresholds. Stages run in order exact → minhash → semantic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact: bool = Field(True, description="drop problems whose normalized question is identical")
    minhash: bool = Field(True, description="drop near-duplicates found by MinHash-LSH")
    shingle: Literal["char", "word"] = Field("char", description="MinHash shingles: character or word n-grams")
    shingle_size: int = Field(5, ge=1, le=64, description="n of the shingle n-grams")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (signature length)")
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="MinHash: estimated Jaccard that makes a duplicate")
    seed: int = Field(1, ge=0, description="MinHash permutation seed (fixed: same pool, same result)")
    mask_numbers: bool = Field(False, description="MinHash: shingle the text with every number replaced by 0")
    lsh_recall_weight: float = Field(
        0.95, gt=0.0, lt=1.0, description="weight of a missed pair vs. an extra candidate when choosing LSH bands"
    )
    bucket_window: int = Field(64, ge=1, description="a bucket member is verified against this many predecessors")
    semantic: Literal["none", "tfidf", "embedding"] = Field("none", description="the last, most expensive stage")
    tfidf_threshold: float = Field(0.9, gt=0.0, le=1.0, description="cosine of char 3-5-gram TF-IDF vectors")
    embedding_model: str = Field(
        "all-MiniLM-L6-v2", description="sentence-transformers model (name or directory) when semantic: embedding"
    )
    embedding_threshold: float = Field(0.92, gt=0.0, le=1.0, description="cosine of the injected embeddings")
    embed_batch_size: int = Field(256, ge=1, description="texts per call of the injected embed function")
    skip_sources: tuple[str, ...] = Field(("procedural",), description="sources never deduplicated among themselves")
    batch_shingles: int = Field(1 << 17, ge=1024, description="shingles hashed per batch (bounds MinHash memory)")
    block_cells: int = Field(1 << 22, ge=1024, description="similarity-matrix cells per block (bounds memory)")


@dataclass(frozen=True, slots=True)
class DedupResult:
    """Kept problem ids (input order), one `DUPLICATES` row per dropped problem, and drops per method."""

    kept_ids: list[str]
    duplicates: pa.Table
    counts: dict[str, int]


# --- exact signature, representative and filter ---------------------------------------------------------------------


def exact_signature(text: str) -> str:
    """sha256 (hex) of the normalized text: equal for whitespace, case, LaTeX-spacing and number-format variants."""
    return hashlib.sha256(comparable_text(text).encode("utf-8")).hexdigest()


def representative_rank(problems: Sequence[dict[str, Any]]) -> np.ndarray:
    """Rank of each problem as a representative (0 = best): non-empty answer, longest solution, smallest id."""

    def key(i: int) -> tuple[int, int, str]:
        p = problems[i]
        has_answer = bool(str(p.get("answer") or "").strip())
        return (0 if has_answer else 1, -len(p.get("solution") or ""), str(p["problem_id"]))

    order = sorted(range(len(problems)), key=key)
    rank = np.empty(len(problems), dtype=np.int64)
    rank[order] = np.arange(len(problems))
    return rank


def choose_kept(labels: np.ndarray, rank: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """Representative row per row: itself when kept, else its cluster's best-ranked row.

    A skip-source row in a cluster whose representative is also skip-source is kept (see module docstring).
    """
    n = len(labels)
    best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, labels, rank)
    by_rank = np.empty(n, dtype=np.int64)
    by_rank[rank] = np.arange(n)
    rep = by_rank[best[labels]]
    if skip is not None:
        rep = np.where(skip & skip[rep], np.arange(n), rep)
    return rep


# --- the staged pipeline --------------------------------------------------------------------------------------------


def _exact_pairs(texts: Sequence[str], skip: np.ndarray) -> Pairs:
    """Edges from each member of an identical-text group to the group's first non-skip member."""
    first: dict[bytes, int] = {}  # 16 bytes of sha256 per text; member lists only for repeated texts
    groups: dict[int, list[int]] = {}
    for index, text in enumerate(texts):
        head = first.setdefault(hashlib.sha256(text.encode("utf-8")).digest()[:16], index)
        if head != index:
            groups.setdefault(head, [head]).append(index)
    left, right = [], []
    for members in groups.values():
        hub = next((m for m in members if not skip[m]), None)
        if hub is not None:
            others = [m for m in members if m != hub]
            left.extend(min(hub, m) for m in others)
            right.extend(max(hub, m) for m in others)
    return Pairs(np.array(left, np.int64), np.array(right, np.int64), np.ones(len(left)))


def _stage_pairs(
    method: Method, texts: list[str], raw: list[str], skip: np.ndarray, config: DedupConfig, embed: Embed | None
) -> tuple[Pairs, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The stage's verified pairs and a function giving the similarity of any two rows under its measure.

    `texts` are normalized; `raw` are the questions as written (an embedding model expects those).
    """
    if method == "exact":
        return _exact_pairs(texts, skip), lambda left, right: np.ones(len(left))
    if method == "minhash":
        if config.mask_numbers:
            texts = [comparable_text(t, mask_numbers=True) for t in raw]
        signatures = minhash_signatures(
            texts,
            size=config.shingle_size,
            kind=config.shingle,
            num_perm=config.num_perm,
            seed=config.seed,
            batch_shingles=config.batch_shingles,
        )
        bands = lsh_bands(config.threshold, config.num_perm, config.lsh_recall_weight)
        pairs = lsh_pairs(signatures, threshold=config.threshold, bands=bands, window=config.bucket_window, skip=skip)
        return pairs, lambda left, right: estimated_jaccard(signatures, left, right)
    if method == "tfidf":
        matrix: sparse.csr_matrix | np.ndarray = tfidf_matrix(texts)
        threshold = config.tfidf_threshold
    else:
        if embed is None:
            raise ValueError("DedupConfig.semantic is 'embedding' but no embed function was given")
        matrix = embedding_matrix(raw, embed, batch_size=config.embed_batch_size)
        threshold = config.embedding_threshold
    pairs = similar_pairs(matrix, threshold=threshold, block_cells=config.block_cells, skip=skip)
    return pairs, lambda left, right: row_cosine(matrix, left, right)


def _check_problems(problems: Sequence[dict[str, Any]]) -> list[str]:
    ids = []
    for index, problem in enumerate(problems):
        missing = [key for key in ("problem_id", "question") if key not in problem]
        if missing:
            raise ValueError(f"problem #{index} lacks {missing}; has keys {sorted(problem)}")
        ids.append(str(problem["problem_id"]))
    if len(set(ids)) != len(ids):
        repeated = next(i for i, count in Counter(ids).items() if count > 1)
        raise ValueError(f"problem_id {repeated!r} occurs more than once; merge rows of one problem first")
    return ids


def deduplicate(problems: Sequence[dict[str, Any]], config: DedupConfig, embed: Embed | None = None) -> DedupResult:
    """Run the configured stages in order, each on the survivors of the one before.

    Problems are dicts with problem_id and question (answer, solution and source are used when present).
    Every input id is either in `kept_ids` or has exactly one `DUPLICATES` row.
    """
    ids = _check_problems(problems)
    n = len(problems)
    texts = [comparable_text(str(p["question"])) for p in problems]
    skip = np.array([p.get("source") in config.skip_sources for p in problems], dtype=bool)
    rank = representative_rank(problems)
    pointer = np.arange(n)  # the representative each dropped row points to, in the stage that dropped it
    dropped: list[tuple[int, int, float, Method]] = []
    stages: list[Method] = [m for m, on in (("exact", config.exact), ("minhash", config.minhash)) if on]
    if config.semantic != "none":
        stages.append(config.semantic)
    alive = np.arange(n)
    for method in stages:
        if len(alive) < 2:
            break
        raw = [str(problems[i]["question"]) for i in alive]
        pairs, similarity = _stage_pairs(method, [texts[i] for i in alive], raw, skip[alive], config, embed)
        labels = cluster(len(alive), pairs, skip[alive])
        rep = choose_kept(labels, np.argsort(np.argsort(rank[alive])), skip[alive])
        lost = np.flatnonzero(rep != np.arange(len(alive)))
        sims = similarity(lost, rep[lost]) if len(lost) else np.zeros(0)
        for local, sim in zip(lost.tolist(), sims.tolist(), strict=True):
            pointer[alive[local]] = alive[rep[local]]
            dropped.append((int(alive[local]), int(alive[rep[local]]), float(sim), method))
        alive = alive[rep == np.arange(len(alive))]
    return DedupResult(
        kept_ids=[ids[i] for i in alive],
        duplicates=_duplicates_table(ids, pointer, dropped),
        counts={m: sum(1 for d in dropped if d[3] == m) for m in METHODS},
    )


def _duplicates_table(ids: list[str], pointer: np.ndarray, dropped: list[tuple[int, int, float, Method]]) -> pa.Table:
    def final(index: int) -> int:
        while pointer[index] != index:  # at most one hop per stage
            index = int(pointer[index])
        return index

    rows = {
        "problem_id": [ids[i] for i, _, _, _ in dropped],
        "cluster_id": [ids[r] for _, r, _, _ in dropped],
        "kept_id": [ids[final(r)] for _, r, _, _ in dropped],
        "similarity": [s for _, _, s, _ in dropped],
        "method": [m for _, _, _, m in dropped],
    }
    return pa.Table.from_pydict(rows, schema=DUPLICATES)
