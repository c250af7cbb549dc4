"""Vector similarity for the last dedup stage and for decontamination: TF-IDF or injected embedding rows, and
every pair of rows whose cosine reaches a threshold, by blocked products with bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from tqdm import tqdm

from scoring.curation.pairs import Pairs

Embed = Callable[[list[str]], np.ndarray]


def tfidf_matrix(texts: Sequence[str]) -> sparse.csr_matrix:
    """L2-normalized TF-IDF rows of character 3–5-grams within word boundaries (`char_wb`), float32."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), dtype=np.float32, lowercase=False)
    return vectorizer.fit_transform(list(texts)).tocsr()


def embedding_matrix(texts: Sequence[str], embed: Embed, *, batch_size: int = 256) -> np.ndarray:
    """Rows from the injected `embed`, called on batches of `batch_size`, re-normalized to unit length (float32).

    `embed` must return one finite row per text; a zero row stays zero and then matches nothing.
    """
    parts = []
    starts = range(0, len(texts), batch_size)
    for lo in tqdm(starts, desc="embedding", unit="batch", disable=len(starts) < 4, leave=False):
        batch = list(texts[lo : lo + batch_size])
        rows = np.asarray(embed(batch), dtype=np.float32)
        if rows.ndim != 2 or rows.shape[0] != len(batch):
            raise ValueError(f"embed returned shape {rows.shape} for {len(batch)} texts; expected ({len(batch)}, d)")
        if not np.isfinite(rows).all():
            raise ValueError("embed returned NaN or infinite values")
        parts.append(rows)
    if not parts:
        return np.zeros((0, 1), dtype=np.float32)
    matrix = np.concatenate(parts)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def _row_blocks(n_rows: int, n_cols: int, block_cells: int) -> Iterator[tuple[int, int]]:
    step = max(1, block_cells // max(n_cols, 1))
    for lo in range(0, n_rows, step):
        yield lo, min(n_rows, lo + step)


def _block_hits(product: Any, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) of the entries ≥ threshold of one block product, sparse or dense."""
    if sparse.issparse(product):
        coo = product.tocoo()
        hit = coo.data >= threshold
        return coo.row[hit].astype(np.int64), coo.col[hit].astype(np.int64), coo.data[hit].astype(np.float64)
    rows, cols = np.nonzero(product >= threshold)
    return rows.astype(np.int64), cols.astype(np.int64), product[rows, cols].astype(np.float64)


def similar_pairs(
    matrix: sparse.csr_matrix | np.ndarray,
    *,
    threshold: float,
    block_cells: int = 1 << 22,
    skip: np.ndarray | None = None,
) -> Pairs:
    """All pairs i < j of unit rows with cosine ≥ threshold, by blocked products (≤ `block_cells` per block).

    Exhaustive, so the work is quadratic in the rows; memory is bounded by the block.
    """
    n = matrix.shape[0]
    skip = np.zeros(n, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    transposed = matrix.T.tocsr() if sparse.issparse(matrix) else matrix.T
    found = []
    for lo, hi in _row_blocks(n, n, block_cells):
        rows, cols, values = _block_hits(matrix[lo:hi] @ transposed, threshold)
        rows = rows + lo
        keep = (cols > rows) & ~(skip[rows] & skip[cols])
        found.append(Pairs(rows[keep], cols[keep], np.minimum(values[keep], 1.0)))
    return Pairs.concat(found)


def row_cosine(matrix: sparse.csr_matrix | np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The cosine of each pair of unit rows (`left[i]`, `right[i]`) of a sparse or dense matrix."""
    if sparse.issparse(matrix):
        return np.asarray(matrix[left].multiply(matrix[right]).sum(axis=1)).ravel().astype(np.float64)
    return np.einsum("ij,ij->i", matrix[left], matrix[right]).astype(np.float64)


def top1_cosine(
    queries: sparse.csr_matrix | np.ndarray, items: sparse.csr_matrix | np.ndarray, *, block_cells: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray]:
    """For each unit query row, its most similar unit item row (lowest index on ties) and that cosine."""
    n_items = items.shape[0]
    best = np.zeros(queries.shape[0], dtype=np.int64)
    score = np.zeros(queries.shape[0], dtype=np.float64)
    if n_items == 0:
        return best, score
    transposed = items.T.tocsr() if sparse.issparse(items) else items.T
    step = max(1, block_cells // n_items)
    for lo in range(0, queries.shape[0], step):
        block = queries[lo : lo + step] @ transposed
        dense = block.toarray() if sparse.issparse(block) else np.asarray(block)
        best[lo : lo + step] = dense.argmax(axis=1)
        score[lo : lo + step] = dense.max(axis=1)
    return best, np.minimum(score, 1.0)
