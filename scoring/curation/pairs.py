"""Verified pairs of row indices and the clusters they make: the `cluster` step shared by every dedup stage.

A stage's signature step ends in `Pairs` (left < right, with the pair's similarity under the stage's measure);
`cluster` joins them by connected components, so membership is transitive (A~B, B~C puts A and C together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components


@dataclass(frozen=True, slots=True)
class Pairs:
    """Verified pairs of row indices (left < right) with their similarity."""

    left: np.ndarray
    right: np.ndarray
    similarity: np.ndarray

    @staticmethod
    def empty() -> Pairs:
        return Pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))

    @staticmethod
    def concat(parts: Sequence[Pairs]) -> Pairs:
        if not parts:
            return Pairs.empty()
        return Pairs(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("left", "right", "similarity")))

    def __len__(self) -> int:
        return len(self.left)


def cluster(n: int, pairs: Pairs, skip: np.ndarray | None = None) -> np.ndarray:
    """Component label per row (the smallest row index of its component); a skip-skip pair is never an edge."""
    if not len(pairs):
        return np.arange(n)
    left, right = pairs.left, pairs.right
    if skip is not None:
        edge = ~(skip[left] & skip[right])
        left, right = left[edge], right[edge]
    graph = sparse.coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(smallest, component, np.arange(n))
    return smallest[component]
