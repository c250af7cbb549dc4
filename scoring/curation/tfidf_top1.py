"""Each pool text's most similar benchmark item by character TF-IDF cosine, in bounded memory at any pool size.

The vectors are those of scikit-learn's `TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))` (smooth idf,
raw counts, L2 norm), with two changes that make the cost grow with one chunk of the pool, not with all of it:
- features are hashed into `HASH_BUCKETS` buckets (`HashingVectorizer`), so no vocabulary of the whole pool is
  held (collisions are rare at 2^22 buckets and can only raise a cosine a little);
- document frequencies come from the benchmark plus at most `IDF_SAMPLE` pool texts spread evenly over the pool
  (all of it when the pool is smaller, which is then sklearn's idf up to hashing); a bucket no sampled text has
  gets the largest idf, as sklearn gives a feature seen once.
The pool is then vectorized `chunk` texts at a time and each chunk's top-1 item kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from scoring.curation.similarity import top1_cosine

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import HashingVectorizer

HASH_BUCKETS = 1 << 22
IDF_SAMPLE = 50_000
CHUNK = 20_000


def _vectorizer() -> HashingVectorizer:
    from sklearn.feature_extraction.text import HashingVectorizer  # imported when used: it costs ~1.5 s to load

    return HashingVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 5),
        n_features=HASH_BUCKETS,
        alternate_sign=False,
        norm=None,
        lowercase=False,
        dtype=np.float32,
    )


def _idf(bench_counts: sparse.csr_matrix, sample_counts: sparse.csr_matrix) -> np.ndarray:
    """sklearn's smooth idf, ln((1 + n) / (1 + df)) + 1, over the benchmark plus the pool sample."""
    documents = bench_counts.shape[0] + sample_counts.shape[0]
    df = np.bincount(bench_counts.indices, minlength=HASH_BUCKETS) + np.bincount(
        sample_counts.indices, minlength=HASH_BUCKETS
    )
    return (np.log((1.0 + documents) / (1.0 + df)) + 1.0).astype(np.float32)


def _weighted(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    from sklearn.preprocessing import normalize

    weighted = counts.copy()
    weighted.data *= idf[weighted.indices]
    return normalize(weighted, norm="l2", copy=False)


def tfidf_top1(
    pool: Sequence[str], benchmarks: Sequence[Sequence[str]], *, chunk: int = CHUNK, block_cells: int = 1 << 22
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """For each benchmark (None when it is empty): each pool text's most similar item (lowest index on ties) and
    that cosine. Texts are already normalized; the pool is vectorized once, `chunk` texts at a time."""
    if not pool:
        return [None] * len(benchmarks)
    vectorizer = _vectorizer()
    step = max(1, len(pool) // IDF_SAMPLE + (len(pool) % IDF_SAMPLE > 0))
    whole = step == 1  # the sample is the pool: vectorize it once, for the idf and the vectors
    sample_counts = vectorizer.transform(pool[::step]).tocsr()
    sides = []
    for bench in benchmarks:
        if not bench:
            sides.append(None)
            continue
        bench_counts = vectorizer.transform(bench).tocsr()
        idf = _idf(bench_counts, sample_counts)
        sides.append((idf, _weighted(bench_counts, idf)))
    results = [
        (np.zeros(len(pool), dtype=np.int64), np.zeros(len(pool), dtype=np.float64)) if side else None for side in sides
    ]
    for lo in range(0, len(pool), chunk):
        counts = sample_counts[lo : lo + chunk] if whole else vectorizer.transform(pool[lo : lo + chunk]).tocsr()
        for side, result in zip(sides, results, strict=True):
            if side is not None and result is not None:
                idf, items = side
                best, score = top1_cosine(_weighted(counts, idf), items, block_cells=block_cells)
                result[0][lo : lo + chunk], result[1][lo : lo + chunk] = best, score
    return results
