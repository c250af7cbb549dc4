"""The pass-rate predictor's features (`../shared/methods.md` §6): TF-IDF character n-grams of the question, the
problem's family and source one-hot, its difficulty knob and a few text statistics (scaled), plus optional dense
embeddings supplied by the caller — and the logistic regression that reads them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["knob", "log_chars", "digits"]
CATEGORIES = ["family", "source"]
INPUT_COLUMNS = ["question", *CATEGORIES, "knob", "knob_missing", *NUMERIC[1:]]
TFIDF = {"analyzer": "char_wb", "ngram_range": [2, 4], "sublinear_tf": True, "max_features": 20000}


def _knob(value: object) -> float | None:
    # Rows read back from Parquet through pandas carry a missing int32 as NaN or pd.NA, not None.
    if value is None or value is pd.NA:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def problem_frame(problems: Sequence[dict], embeddings: np.ndarray | None) -> pd.DataFrame:
    """One row per problem with the raw columns the feature transformer reads."""
    rows = []
    for row in problems:
        question = str(row.get("question") or "")
        knob = _knob(row.get("difficulty_knob"))
        rows.append(
            {
                "question": question,
                "family": str(row.get("family") or ""),
                "source": str(row.get("source") or ""),
                "knob": 0.0 if knob is None else knob,
                "knob_missing": 1.0 if knob is None else 0.0,
                "log_chars": math.log1p(len(question)),  # log1p: an empty question must not give -inf
                "digits": float(sum(ch.isdigit() for ch in question)),
            }
        )
    frame = pd.DataFrame(rows, columns=INPUT_COLUMNS)
    if embeddings is not None:
        columns = [f"emb_{i}" for i in range(embeddings.shape[1])]
        frame = pd.concat([frame, pd.DataFrame(embeddings, columns=columns, index=frame.index)], axis=1)
    return frame


def featurizer(
    embedding_dim: int | None,
    vocabulary: Mapping[str, int] | None = None,
    categories: list[list[str]] | None = None,
) -> ColumnTransformer:
    """The feature transformer; `vocabulary` and `categories` fix those fitted values (used when loading)."""
    tfidf = {**TFIDF, "ngram_range": tuple(TFIDF["ngram_range"])}  # type: ignore[arg-type]
    transformers: list[tuple] = [
        (
            "question",
            TfidfVectorizer(**tfidf, vocabulary=vocabulary),  # type: ignore[arg-type]
            "question",  # a scalar column name hands the vectorizer a 1-D column of strings
        ),
        ("category", OneHotEncoder(categories=categories or "auto", handle_unknown="ignore"), CATEGORIES),
        # Scaled so one C regularises the numeric columns about as much as the sparse ones.
        ("numeric", StandardScaler(), NUMERIC),
        ("knob_missing", "passthrough", ["knob_missing"]),
    ]
    if embedding_dim:
        transformers.append(("embedding", StandardScaler(), [f"emb_{i}" for i in range(embedding_dim)]))
    # sparse_threshold=1.0 keeps the output sparse even when dense embeddings would tip the density over 0.3.
    return ColumnTransformer(transformers, sparse_threshold=1.0)


def check_embeddings(embeddings: np.ndarray | None, rows: int) -> np.ndarray | None:
    """`embeddings` as float64 with one finite row per problem (None stays None); ValueError otherwise."""
    if embeddings is None:
        return None
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != rows:
        raise ValueError(f"embeddings must be a 2-D array with one row per problem ({rows}), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("embeddings contain NaN or infinite values")
    return array


def logistic_regression(c: float) -> LogisticRegression:
    """The model V over the features: L2-regularised logistic regression with inverse strength `c`."""
    return LogisticRegression(C=c, solver="lbfgs", max_iter=2000)


def featurizer_spec(embedding_dim: int | None) -> dict[str, object]:
    """The featurizer settings a saved predictor records; loading requires the current code to use the same."""
    return {
        "question": {**TFIDF, "norm": "l2", "use_idf": True, "smooth_idf": True, "lowercase": True},
        "category": CATEGORIES,
        "numeric": NUMERIC,
        "passthrough": ["knob_missing"],
        "embedding_dim": embedding_dim,
    }


def input_columns(embedding_dim: int | None) -> list[str]:
    """The columns the feature transformer reads (see `problem_frame`)."""
    return INPUT_COLUMNS + [f"emb_{i}" for i in range(embedding_dim or 0)]


def skeleton_frame(embedding_dim: int | None) -> pd.DataFrame:
    """Two blank problems: enough rows to fit the transformer's structure before the saved values go in."""
    return problem_frame([{}, {}], None if not embedding_dim else np.zeros((2, embedding_dim)))
