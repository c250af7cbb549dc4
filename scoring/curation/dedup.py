"""Staged deduplication of a problem pool: exact → MinHash-LSH → (TF-IDF or embedding), each stage on survivors.

Every stage is three pure steps — **signature** (a hash, a MinHash row, a vector per problem), **cluster**
(candidate pairs verified against the stage's threshold, joined by connected components) and **filter** (one
representative kept per cluster). Nothing is silently dropped: every dropped problem is a `DUPLICATES` row.

Rules a reader should know:
- Texts are compared after `normalize_text` (NFKC, case, whitespace, LaTeX spacing/sizing, number format).
- MinHash shingles are *character* n-grams (default 5) of the normalized question. Word shingles lose every
  shingle that touches a changed number, so a problem whose numbers were edited falls below the threshold;
  character shingles lose only the few that overlap the digits (`tests/scoring/test_dedup.py` measures both).
  Candidates from the LSH bands are verified by their estimated Jaccard (the share of equal signature
  values) before they join a cluster. The bands favour recall (see `DedupConfig.lsh_recall_weight`): a missed
  candidate is a lost duplicate, an extra candidate only costs one verification.
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
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from tqdm import tqdm

from scoring.schemas import DUPLICATES

Method = Literal["exact", "minhash", "tfidf", "embedding"]
METHODS: tuple[Method, ...] = ("exact", "minhash", "tfidf", "embedding")
Embed = Callable[[list[str]], np.ndarray]


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


@dataclass(frozen=True, slots=True)
class DedupResult:
    """Kept problem ids (input order), one `DUPLICATES` row per dropped problem, and drops per method."""

    kept_ids: list[str]
    duplicates: pa.Table
    counts: dict[str, int]


# --- normalization -------------------------------------------------------------------------------------------

_PUNCT = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "−": "-", "~": " "})
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_MATH_DELIMITER = re.compile(r"\\[()\[\]]|\$")
_LATEX_NOISE = re.compile(
    r"\\[,;:! ]"  # thin, medium, negative and control spaces
    r"|\\(?:left|right)\."  # invisible delimiters
    r"|\\(?:q?quad|left|right|[bB]igg?[lrm]?|displaystyle|textstyle|scriptstyle)(?![a-zA-Z])"
)
_FRAC = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_THOUSANDS = re.compile(r"(?<=\d)(?:,|\{,\})(?=\d{3}(?!\d))")
_TRAILING_ZEROS = re.compile(r"(\d)\.(\d*?)0+(?!\d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SINGLE_BRACED = re.compile(r"([\^_])\{([^{}\s])\}")
# Symbols are padded by a translate table (no Python call per match); "." only outside a number, so 2.5 stays.
_PAD = str.maketrans(
    {c: f" {c} " for c in map(chr, range(33, 127)) if not (c.isalnum() or c in "_.\\")} | {"\\": " \\"}
)
_LONE_DOT = re.compile(r"\.(?!\d)|(?<!\d)\.")
_OTHER_SYMBOL = re.compile(r"([^\w\s\x00-\x7f])")  # non-ASCII symbols: × ÷ ° ≤ …
_SPACE = re.compile(r"\s+")


def normalize_text(text: str, *, mask_numbers: bool = False) -> str:
    """The comparable form of a question: what exact hashes, shingles and n-grams are computed from.

    NFKC; curly quotes, dashes and the minus sign made ASCII; `$`, `\\$`, `\\(` `\\)` `\\[` `\\]` dropped;
    LaTeX spacing (`\\,` `\\;` `\\:` `\\!` `\\ ` `\\quad` `~`), sizing (`\\left` `\\right` `\\big…`) and
    `\\displaystyle` dropped; `\\dfrac`/`\\tfrac` → `\\frac`; `\\text{…}` unwrapped; lowercase; `1,000` →
    `1000`, `2.50` → `2.5`, `3.0` → `3`; `x^{2}` → `x^2`; every symbol set apart by single spaces, so
    `2+3`, `2 + 3` and `( a )` vs `(a)` agree while words stay words. With `mask_numbers`, every number
    becomes `0`, so texts that differ only in their numbers normalize to the same string.
    """
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT)
    if "\\" in text or "$" in text:  # most of the cost is LaTeX handling; plain prose skips it
        text = _MATH_DELIMITER.sub(" ", _TEXT_WRAPPER.sub(r" \1 ", text.replace("\\$", "$")))
        text = _FRAC.sub(r"\\frac", _LATEX_NOISE.sub("", text))
    text = text.lower()
    if "," in text or "{" in text:
        text = _THOUSANDS.sub("", text)
    if "." in text:
        text = _TRAILING_ZEROS.sub(lambda m: m[1] + ("." + m[2] if m[2] else ""), text)
    if mask_numbers:
        text = _NUMBER.sub("0", text)
    if "{" in text:
        text = _SINGLE_BRACED.sub(r"\1\2", text)
    # a space on both sides of a symbol, and before a backslash (a command name runs to the next non-letter)
    text = _LONE_DOT.sub(" . ", text.translate(_PAD)) if "." in text else text.translate(_PAD)
    if not text.isascii():
        text = _OTHER_SYMBOL.sub(r" \1 ", text)
    return _SPACE.sub(" ", text).strip()


def exact_signature(text: str) -> str:
    """sha256 (hex) of the normalized text: equal for whitespace, case, LaTeX-spacing and number-format variants."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


# --- MinHash signatures ------------------------------------------------------------------------------------------

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


def _estimated_jaccard(signatures: np.ndarray, left: np.ndarray, right: np.ndarray, chunk: int = 1 << 15) -> np.ndarray:
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
            sims = _estimated_jaccard(signatures, left, right)
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


# --- vector similarity (TF-IDF, embeddings) -----------------------------------------------------------------------


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


def _row_cosine(matrix: sparse.csr_matrix | np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    if sparse.issparse(matrix):
        return np.asarray(matrix[left].multiply(matrix[right]).sum(axis=1)).ravel().astype(np.float64)
    return np.einsum("ij,ij->i", matrix[left], matrix[right]).astype(np.float64)


# --- cluster and filter ------------------------------------------------------------------------------------------


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


# --- the staged pipeline -----------------------------------------------------------------------------------------


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
            texts = [normalize_text(t, mask_numbers=True) for t in raw]
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
        return pairs, lambda left, right: _estimated_jaccard(signatures, left, right)
    if method == "tfidf":
        matrix: sparse.csr_matrix | np.ndarray = tfidf_matrix(texts)
        threshold = config.tfidf_threshold
    else:
        if embed is None:
            raise ValueError("DedupConfig.semantic is 'embedding' but no embed function was given")
        matrix = embedding_matrix(raw, embed, batch_size=config.embed_batch_size)
        threshold = config.embedding_threshold
    pairs = similar_pairs(matrix, threshold=threshold, block_cells=config.block_cells, skip=skip)
    return pairs, lambda left, right: _row_cosine(matrix, left, right)


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
    texts = [normalize_text(str(p["question"])) for p in problems]
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
