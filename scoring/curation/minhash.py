"""MinHash-LSH, the near-duplicate stage of dedup: shingles → signatures → LSH bands → verified pairs.

Shingles are *character* n-grams (default 5) of the comparable text (`scoring.curation.normalize`). Word
shingles lose every shingle that touches a changed number, so a problem whose numbers were edited falls below
the threshold; character shingles lose only the few that overlap the digits (`tests/scoring/curation/test_dedup.py`
measures both). Signature rows are datasketch "affine32" MinHash values, computed vectorized in bounded batches.
Candidates from the LSH bands are verified by their estimated Jaccard (the share of equal signature values)
before they become pairs. The bands favour recall (see `DedupConfig.lsh_recall_weight`): a missed candidate is
a lost duplicate, an extra candidate only costs one verification.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np

from scoring.curation.pairs import Pairs, cluster

_U64 = np.uint64
_POLY = _U64(0x100000001B3)  # multiplier of the polynomial shingle hash (the 64-bit FNV prime)
_MASK64 = (1 << 64) - 1
_EMPTY = np.uint32(0xFFFFFFFF)  # a signature value no shingle lowered: the row of an empty text


def _fmix64(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 64-bit finalizer: spreads the polynomial hash so its top 32 bits are usable.
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> _U64(33))
    h = h * _U64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> _U64(33))


def _fmix32(h: np.ndarray) -> np.ndarray:
    # The 32-bit finalizer datasketch's "affine32" scheme applies to each input hash before permuting it.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def shingle_hash(shingle: str) -> int:
    """The 32-bit hash of one shingle: a polynomial over its code points, mixed. Usable as datasketch's hashfunc."""
    h = 0
    for char in shingle:
        h = (h * int(_POLY) + ord(char)) & _MASK64
    return int(_fmix64(np.array([h], dtype=_U64))[0] >> _U64(32))


def shingles(text: str, *, size: int = 5, kind: Literal["char", "word"] = "char") -> list[str]:
    """The shingles of an already normalized text: all `size`-grams, or the whole text when it is shorter."""
    if kind == "word":
        words = text.split()
        return [" ".join(words[i : i + size]) for i in range(max(len(words) - size + 1, 1))] if words else []
    return [text[i : i + size] for i in range(max(len(text) - size + 1, 1))] if text else []


def _char_shingle_hashes(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(hash per shingle, owning text index per shingle) for a batch, vectorized over the joined code points."""
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    codes = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(_U64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    windows = np.where(lengths >= size, lengths - size + 1, 0)
    owner = np.repeat(np.arange(len(texts)), windows)
    hashes = np.zeros(0, dtype=_U64)
    if windows.sum():
        count = len(codes) - size + 1
        rolling = np.zeros(count, dtype=_U64)
        for k in range(size):  # polynomial hash of every window of the joined text, one vector op per offset
            rolling = rolling * _POLY + codes[k : k + count]
        first = np.repeat(starts - np.concatenate([[0], np.cumsum(windows)[:-1]]), windows)
        hashes = rolling[first + np.arange(len(owner))]
        hashes = (_fmix64(hashes) >> _U64(32)).astype(np.uint32)
    short = np.flatnonzero((lengths > 0) & (lengths < size))
    if len(short):  # a text shorter than one shingle is its own single shingle
        extra = np.array([shingle_hash(texts[i]) for i in short], dtype=np.uint32)
        hashes, owner = np.concatenate([hashes, extra]), np.concatenate([owner, short])
        order = np.argsort(owner, kind="stable")
        hashes, owner = hashes[order], owner[order]
    return hashes.astype(np.uint32), owner


def _word_shingle_hashes(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    hashes: list[int] = []
    owner: list[int] = []
    for index, text in enumerate(texts):
        found = [shingle_hash(s) for s in shingles(text, size=size, kind="word")]
        hashes.extend(found)
        owner.extend([index] * len(found))
    return np.array(hashes, dtype=np.uint32), np.array(owner, dtype=np.int64)


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from datasketch import MinHash  # imported here: only MinHash dedup needs it

    # datasketch's own affine32 permutations, so each row equals MinHash(...).hashvalues for the same shingles.
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)


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


def minhash_signatures(
    texts: Sequence[str],
    *,
    size: int = 5,
    kind: Literal["char", "word"] = "char",
    num_perm: int = 128,
    seed: int = 1,
    batch_shingles: int = 1 << 17,
) -> np.ndarray:
    """One MinHash row (uint32, `num_perm` values) per normalized text, computed in bounded batches.

    Rows are datasketch "affine32" MinHash values with `shingle_hash` as the hash function, so
    `datasketch.LeanMinHash(seed=seed, hashvalues=row, scheme="affine32")` interoperates with them. Memory is
    the output (N × num_perm × 4 bytes) plus one batch of `batch_shingles` × num_perm values.
    An empty text's row is all 0xFFFFFFFF and is never a candidate.
    """
    a, b = _permutations(num_perm, seed)
    out = np.full((len(texts), num_perm), _EMPTY, dtype=np.uint32)
    hasher = _char_shingle_hashes if kind == "char" else _word_shingle_hashes
    for lo, hi in _text_batches(texts, batch_shingles):
        hashes, owner = hasher(texts[lo:hi], size)
        for c0 in range(0, len(hashes), batch_shingles):  # a single huge text is split across chunks
            chunk, who = hashes[c0 : c0 + batch_shingles], owner[c0 : c0 + batch_shingles] + lo
            # (num_perm, shingles): the per-text minimum then runs along contiguous memory, twice as fast
            permuted = np.multiply.outer(a, _fmix32(chunk))  # uint32 arithmetic wraps: a * h + b mod 2^32
            permuted += b[:, None]
            heads = np.flatnonzero(np.concatenate([[True], who[1:] != who[:-1]]))
            mins = np.minimum.reduceat(permuted, heads, axis=1).T
            out[who[heads]] = np.minimum(out[who[heads]], mins)
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
