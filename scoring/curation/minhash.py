"""MinHash-LSH, the near-duplicate stage of dedup: shingles → signatures → LSH bands → verified pairs.

Shingles are *character* n-grams (default 5) of the comparable text (`scoring.curation.normalize`). Word
shingles lose every shingle that touches a changed number, so a problem whose numbers were edited falls below
the threshold; character shingles lose only the few that overlap the digits (`tests/scoring/curation/test_dedup.py`
measures both). Each shingle gets a 64-bit hash here (vectorized); the signature rows are rensa's R-MinHash of
those hashes (Rust, `RMinHash.digest_matrix_from_flat_token_hashes`), which costs about a tenth of a k-permutation
MinHash in numpy (`bench/dedup_scale.py`). Candidates from the LSH bands are verified by their estimated Jaccard
(the share of equal signature values) before they become pairs. The bands favour recall (see
`DedupConfig.lsh_recall_weight`): a missed candidate is a lost duplicate, an extra candidate only costs one
verification.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from rensa import RMinHash

from scoring.curation.pairs import Pairs, cluster

_U64 = np.uint64
_POLY = _U64(0x100000001B3)  # multiplier of the polynomial shingle hash (the 64-bit FNV prime)
_MASK64 = (1 << 64) - 1
_EMPTY = np.uint32(0xFFFFFFFF)  # a signature value no shingle lowered: the row of an empty text
# The R-MinHash algorithm our signatures were measured with: a new one gives other rows for the same texts, so the
# same pool and seed could dedup differently. Raise rather than mix signatures silently (see `minhash_signatures`).
RENSA_ALGORITHM_VERSION = 2


def _fmix64(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 64-bit finalizer, in place: spreads the polynomial hash over all 64 bits.
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


def shingle_hash(shingle: str) -> int:
    """The 64-bit hash of one shingle: a polynomial over its code points, mixed (`minhash_signatures` vectorizes it)."""
    h = 0
    for char in shingle:
        h = (h * int(_POLY) + ord(char)) & _MASK64
    return int(_fmix64(np.array([h], dtype=_U64))[0])


def shingles(text: str, *, size: int = 5, kind: Literal["char", "word"] = "char") -> list[str]:
    """The shingles of an already normalized text: all `size`-grams, or the whole text when it is shorter."""
    if kind == "word":
        words = text.split()
        return [" ".join(words[i : i + size]) for i in range(max(len(words) - size + 1, 1))] if words else []
    return [text[i : i + size] for i in range(max(len(text) - size + 1, 1))] if text else []


def _char_shingle_hashes(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash per shingle, owning text index per shingle, ascending) for a batch, vectorized over the joined text."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(_U64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    windows = np.where(lengths >= size, lengths - size + 1, 0)
    owner = np.repeat(np.arange(len(texts)), windows)
    hashes = np.zeros(0, dtype=_U64)
    if windows.sum():
        count = len(codes) - size + 1
        rolling = codes[:count].copy()
        for k in range(1, size):  # polynomial hash of every window of the joined text, in place, one op per offset
            rolling *= _POLY
            rolling += codes[k : k + count]
        first = np.repeat(starts - np.concatenate([[0], np.cumsum(windows)[:-1]]), windows)
        hashes = _fmix64(rolling[first + np.arange(len(owner))])  # drops windows that straddle two texts
    short = np.flatnonzero((lengths > 0) & (lengths < size))
    if len(short):  # a text shorter than one shingle is its own single shingle
        extra = np.array([shingle_hash(texts[i]) for i in short], dtype=_U64)
        hashes, owner = np.concatenate([hashes, extra]), np.concatenate([owner, short])
        order = np.argsort(owner, kind="stable")
        hashes, owner = hashes[order], owner[order]
    return hashes, owner


def _word_shingle_hashes(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    hashes: list[int] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        found = [shingle_hash(s) for s in shingles(text, size=size, kind="word")]
        hashes.extend(found)
        owner.extend([index] * len(found))
    return np.array(hashes, dtype=_U64), np.array(owner, dtype=np.int64)


def _text_batches(texts: Sequence[str], budget: int) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges of texts with about `budget` characters each (at least one text per range)."""
    start, total = 0, 0
    for index, text in enumerate(texts):
        total += len(text) + 1
        if total >= budget:
            yield start, index + 1
            start, total = index + 1, 0
    if start < len(texts):
        yield start, len(texts)


def _check_rensa() -> None:
    found = getattr(RMinHash, "ALGORITHM_VERSION", None)
    if found != RENSA_ALGORITHM_VERSION:
        raise RuntimeError(
            f"rensa's RMinHash ALGORITHM_VERSION is {found}, Gradus expects {RENSA_ALGORITHM_VERSION}: its signatures "
            "would differ from earlier runs'. Install the pinned rensa (`pip install -e .`), or re-measure "
            "bench/dedup_scale.py with the new one and update RENSA_ALGORITHM_VERSION."
        )


def minhash_signatures(
    texts: Sequence[str],
    *,
    size: int = 5,
    kind: Literal["char", "word"] = "char",
    num_perm: int = 128,
    seed: int = 1,
    batch_shingles: int = 1 << 17,
) -> np.ndarray:
    """One R-MinHash row (uint32, `num_perm` values) per normalized text, computed in bounded batches.

    Row i is rensa's `RMinHash` (seeded by `seed`) of the set of `shingle_hash` values of text i's shingles, so
    it depends on that set alone: not on shingle order or repeats, nor on how texts are batched. Memory is the
    output (N × num_perm × 4 bytes) plus one batch of about `batch_shingles` shingles (a text longer than that
    is a batch of its own). An empty text's row is all 0xFFFFFFFF and is never a candidate.
    """
    _check_rensa()
    out = np.full((len(texts), num_perm), _EMPTY, dtype=np.uint32)
    hasher = _char_shingle_hashes if kind == "char" else _word_shingle_hashes
    for lo, hi in _text_batches(texts, batch_shingles):
        hashes, owner = hasher(texts[lo:hi], size)
        offsets = np.zeros(hi - lo + 1, dtype=_U64)
        np.cumsum(np.bincount(owner, minlength=hi - lo), out=offsets[1:])
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, num_perm, seed)
        out[lo:hi] = matrix.to_rows()  # small batches keep this list-of-rows copy cheap (it stays in cache)
    return out


@lru_cache(maxsize=32)
def lsh_bands(threshold: float, num_perm: int, recall_weight: float) -> tuple[int, int]:
    """(bands, rows per band) from datasketch's optimizer, weighting missed pairs by `recall_weight`."""
    from datasketch import MinHashLSH

    fp_weight = round(1.0 - recall_weight, 12)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(fp_weight, 1.0 - fp_weight))
    return lsh.b, lsh.r


def _band_keys(signatures: np.ndarray, lo: int, hi: int) -> np.ndarray:
    key = np.zeros(len(signatures), dtype=_U64)
    for column in range(lo, hi):
        key = _fmix64((key ^ signatures[:, column].astype(_U64)) * _POLY)
    return key


def estimated_jaccard(signatures: np.ndarray, left: np.ndarray, right: np.ndarray, chunk: int = 1 << 15) -> np.ndarray:
    """The estimated Jaccard of each pair of signature rows (`left[i]`, `right[i]`): their share of equal values."""
    out = np.empty(len(left), dtype=np.float64)
    for c0 in range(0, len(left), chunk):
        l_rows, r_rows = signatures[left[c0 : c0 + chunk]], signatures[right[c0 : c0 + chunk]]
        out[c0 : c0 + chunk] = (l_rows == r_rows).mean(axis=1)
    return out


def lsh_pairs(
    signatures: np.ndarray,
    *,
    threshold: float = 0.8,
    bands: tuple[int, int] = (16, 8),
    window: int = 64,
    skip: np.ndarray | None = None,
) -> Pairs:
    """Pairs that share an LSH band and whose estimated Jaccard is ≥ `threshold`; skip-skip pairs never form.

    Buckets are found by sorting each band's keys (memory O(N) per band, unlike one Python set per bucket).
    Inside a bucket each member is checked against up to `window` members before it, so one huge bucket costs
    O(N × window), not O(N²). Pairs already joined (directly or through others) by an earlier band are not
    verified again, so a band adds edges only between clusters that are still apart.
    """
    n = len(signatures)
    skip = np.zeros(n, dtype=bool) if skip is None else np.asarray(skip, dtype=bool)
    usable = signatures.min(axis=1) != _EMPTY if n else np.zeros(0, dtype=bool)  # an empty text's row is all max
    n_bands, rows = bands
    labels = np.arange(n)
    found: list[Pairs] = []
    for band in range(n_bands):
        keys = _band_keys(signatures, band * rows, (band + 1) * rows)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        for offset in range(1, window + 1):
            same = sorted_keys[offset:] == sorted_keys[:-offset]
            if not same.any():
                break
            left, right = order[:-offset][same], order[offset:][same]
            keep = usable[left] & usable[right] & ~(skip[left] & skip[right]) & (labels[left] != labels[right])
            left, right = np.minimum(left[keep], right[keep]), np.maximum(left[keep], right[keep])
            sims = estimated_jaccard(signatures, left, right)
            ok = sims >= threshold
            if ok.any():
                found.append(Pairs(left[ok], right[ok], sims[ok]))
        if found:
            merged = Pairs.concat(found)
            labels = cluster(n, merged, skip)
            found = [merged]
    return _unique_pairs(Pairs.concat(found), n)


def _unique_pairs(pairs: Pairs, n: int) -> Pairs:
    if not len(pairs):
        return pairs
    codes = pairs.left * max(n, 1) + pairs.right
    _, first = np.unique(codes, return_index=True)
    return Pairs(pairs.left[first], pairs.right[first], pairs.similarity[first])
