"""A learned pass-rate predictor that spares rollouts (`../shared/methods.md` §6, §1.2).

PCL (Gao et al., arXiv 2510.01135) scores prompts with a value model V(x) trained on the rollouts that grading
produces anyway, and prefers prompts whose prediction is close to τ = 0.5. Here V is a classic regressor:
logistic regression over TF-IDF character n-grams of the question, the problem's family and source, its
difficulty knob and a few text statistics (plus optional dense embeddings supplied by the caller).

The fit is a binomial likelihood: a problem with k successes in n rollouts becomes a positive row of weight k
and a negative row of weight n - k, so a problem graded with 64 rollouts counts four times one graded with 16.

The prediction is reported as a Beta(m·p, m·(1-p)) belief, where m is the predictor's worth in rollouts: the
pseudo-count that best explains held-out counts under a beta-binomial, estimated by K-fold cross-fitting. It is
directly comparable with the Beta posterior of §1.2 — a predictor with m = 3 is worth about three rollouts, and
its Beta can serve as a prior that real rollouts then update.

A saved predictor is two files that cannot run code when read: `<name>.npz`, the fitted parameters as plain
numeric arrays (TF-IDF vocabulary and idf, one-hot categories, scaler means and scales, logistic coefficients,
out-of-fold evidence; strings as UTF-8 bytes), read with `numpy.load(allow_pickle=False)`; and `<name>.json`,
the manifest: format version, hyperparameters, featurizer settings, input columns, the pseudo-count and the
sha256 of the `.npz`, checked before the arrays are read. The sklearn objects are rebuilt from those values.
Pickled predictors (`predictor.joblib`, written by earlier versions) are never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from scipy.optimize import minimize_scalar
from scipy.stats import beta as beta_dist
from scipy.stats import betabinom
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.preprocessing import OneHotEncoder, StandardScaler

PREDICTOR_METHOD = "predicted_v1"

P_CLIP = (0.01, 0.99)  # a predicted 0 or 1 would make the Beta degenerate and the beta-binomial fit -inf
PSEUDO_COUNT_BOUNDS = (0.5, 64.0)
_TAU = 0.5  # PCL's target expected reward
_NUMERIC = ["knob", "log_chars", "digits"]
_CATEGORIES = ["family", "source"]
_INPUT_COLUMNS = ["question", *_CATEGORIES, "knob", "knob_missing", *_NUMERIC[1:]]
_TFIDF = {"analyzer": "char_wb", "ngram_range": [2, 4], "sublinear_tf": True, "max_features": 20000}

FILE_FORMAT = "gradus.pass_rate_predictor"
FILE_FORMAT_VERSION = 2  # 1 was a joblib pickle, never read any more
MANIFEST_SUFFIX = ".json"
ARRAYS_SUFFIX = ".npz"


@dataclass(frozen=True)
class Prediction:
    """Predicted pass rate of one problem and the Beta(alpha, beta) belief around it."""

    problem_id: str
    p: float
    alpha: float
    beta: float
    lo: float  # equal-tailed interval of Beta(alpha, beta) at the predictor's level
    hi: float


def _knob(value: object) -> float | None:
    # Rows read back from Parquet through pandas carry a missing int32 as NaN or pd.NA, not None.
    if value is None or value is pd.NA:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _frame(problems: Sequence[dict], embeddings: np.ndarray | None) -> pd.DataFrame:
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
    frame = pd.DataFrame(rows, columns=_INPUT_COLUMNS)
    if embeddings is not None:
        columns = [f"emb_{i}" for i in range(embeddings.shape[1])]
        frame = pd.concat([frame, pd.DataFrame(embeddings, columns=columns, index=frame.index)], axis=1)
    return frame


def _featurizer(
    embedding_dim: int | None,
    vocabulary: Mapping[str, int] | None = None,
    categories: list[list[str]] | None = None,
) -> ColumnTransformer:
    """The feature transformer; `vocabulary` and `categories` fix those fitted values (used when loading)."""
    tfidf = {**_TFIDF, "ngram_range": tuple(_TFIDF["ngram_range"])}  # type: ignore[arg-type]
    transformers: list[tuple] = [
        (
            "question",
            TfidfVectorizer(**tfidf, vocabulary=vocabulary),  # type: ignore[arg-type]
            "question",  # a scalar column name hands the vectorizer a 1-D column of strings
        ),
        ("category", OneHotEncoder(categories=categories or "auto", handle_unknown="ignore"), _CATEGORIES),
        # Scaled so one C regularises the numeric columns about as much as the sparse ones.
        ("numeric", StandardScaler(), _NUMERIC),
        ("knob_missing", "passthrough", ["knob_missing"]),
    ]
    if embedding_dim:
        transformers.append(("embedding", StandardScaler(), [f"emb_{i}" for i in range(embedding_dim)]))
    # sparse_threshold=1.0 keeps the output sparse even when dense embeddings would tip the density over 0.3.
    return ColumnTransformer(transformers, sparse_threshold=1.0)


def _check_embeddings(embeddings: np.ndarray | None, rows: int) -> np.ndarray | None:
    if embeddings is None:
        return None
    array = np.asarray(embeddings, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != rows:
        raise ValueError(f"embeddings must be a 2-D array with one row per problem ({rows}), got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("embeddings contain NaN or infinite values")
    return array


def _problem_name(row: dict, index: int) -> str:
    pid = row.get("problem_id")
    return f"problem {pid!r}" if pid else f"problem at row {index}"


def _beta_interval(alpha: np.ndarray, beta_: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - level) / 2
    return beta_dist.ppf(tail, alpha, beta_), beta_dist.ppf(1 - tail, alpha, beta_)


class PassRatePredictor:
    """Predicts a problem's pass rate for one student from its text and metadata, with a calibrated pseudo-count."""

    def __init__(self, *, c: float = 1.0, folds: int = 5, seed: int = 0, level: float = 0.90) -> None:
        if c <= 0:
            raise ValueError(f"c must be positive, got {c}")
        if folds < 2:
            raise ValueError(f"folds must be at least 2, got {folds}")
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        self.c = c
        self.folds = folds
        self.seed = seed
        self.level = level
        self._features: ColumnTransformer | None = None
        self._model: LogisticRegression | None = None
        self._embedding_dim: int | None = None
        self._m: float | None = None
        # Out-of-fold predictions on the training problems, with their counts: the evidence behind m.
        self._oof_ids: list[str] = []
        self._oof_p = np.empty(0)
        self._oof_k = np.empty(0, dtype=np.int64)
        self._oof_n = np.empty(0, dtype=np.int64)

    # ------------------------------------------------------------------ fitting

    def fit(
        self, problems: list[dict], counts: list[tuple[int, int]], embeddings: np.ndarray | None = None
    ) -> PassRatePredictor:
        """Fit on graded problems; `counts[i]` is (k successes, n rollouts) of `problems[i]`. Rows with n = 0 are
        skipped. Estimates the pseudo-count m by cross-fitting before fitting the final model on all rows."""
        if len(counts) != len(problems):
            raise ValueError(f"got {len(problems)} problems but {len(counts)} counts")
        embeddings = _check_embeddings(embeddings, len(problems))
        keep: list[int] = []
        for i, (row, pair) in enumerate(zip(problems, counts, strict=True)):
            k, n = int(pair[0]), int(pair[1])
            if k < 0 or n < 0 or k > n:
                raise ValueError(f"{_problem_name(row, i)} has invalid counts k={k}, n={n} (need 0 <= k <= n)")
            if n > 0:
                keep.append(i)
        graded = [problems[i] for i in keep]
        k_arr = np.array([int(counts[i][0]) for i in keep], dtype=np.int64)
        n_arr = np.array([int(counts[i][1]) for i in keep], dtype=np.int64)
        if len(graded) < 2 * self.folds:
            raise ValueError(
                f"need at least {2 * self.folds} graded problems (n > 0) for {self.folds}-fold cross-fitting, "
                f"got {len(graded)}"
            )
        if k_arr.sum() == 0 or k_arr.sum() == n_arr.sum():
            raise ValueError("the training counts contain only one outcome (all rollouts failed or all passed)")
        emb = embeddings[keep] if embeddings is not None else None
        self._embedding_dim = None if emb is None else emb.shape[1]
        frame = _frame(graded, emb)

        oof = np.empty(len(graded))
        splitter = KFold(n_splits=self.folds, shuffle=True, random_state=self.seed)
        for train, held in splitter.split(frame):
            features, model = self._fit_rows(frame.iloc[train], k_arr[train], n_arr[train])
            oof[held] = self._predict_rows(features, model, frame.iloc[held], k_arr[train], n_arr[train])
        oof = np.clip(oof, *P_CLIP)

        self._oof_ids = [str(row.get("problem_id") or f"#{i}") for i, row in zip(keep, graded, strict=True)]
        self._oof_p, self._oof_k, self._oof_n = oof, k_arr, n_arr
        self._m = _fit_pseudo_count(oof, k_arr, n_arr)
        self._features, self._model = self._fit_rows(frame, k_arr, n_arr)
        return self

    def _fit_rows(
        self, frame: pd.DataFrame, k: np.ndarray, n: np.ndarray
    ) -> tuple[ColumnTransformer, LogisticRegression | None]:
        # The transformer sees each problem once (IDF over problems, not over expanded rows).
        features = _featurizer(self._embedding_dim)
        x = features.fit_transform(frame)
        if k.sum() == 0 or k.sum() == n.sum():
            return features, None  # a fold with one outcome only: fall back to its pooled rate
        rows = np.arange(len(frame))
        # Binomial likelihood: label 1 with weight k, label 0 with weight n - k; zero-weight rows are dropped.
        index = np.concatenate([rows[k > 0], rows[n - k > 0]])
        labels = np.concatenate([np.ones(int((k > 0).sum())), np.zeros(int((n - k > 0).sum()))])
        weights = np.concatenate([k[k > 0], (n - k)[n - k > 0]]).astype(np.float64)
        model = LogisticRegression(C=self.c, solver="lbfgs", max_iter=2000)
        model.fit(x[index], labels, sample_weight=weights)
        return features, model

    @staticmethod
    def _predict_rows(
        features: ColumnTransformer,
        model: LogisticRegression | None,
        frame: pd.DataFrame,
        k: np.ndarray,
        n: np.ndarray,
    ) -> np.ndarray:
        if model is None:
            return np.full(len(frame), k.sum() / n.sum())
        return model.predict_proba(features.transform(frame))[:, 1]

    # --------------------------------------------------------------- predicting

    def _require_fitted(self) -> None:
        if self._features is None or self._m is None:
            raise RuntimeError("PassRatePredictor is not fitted; call fit() first")

    def predict(self, problems: list[dict], embeddings: np.ndarray | None = None) -> list[Prediction]:
        """One Prediction per problem, in order. Embeddings are required exactly when the predictor was fit with
        them, with the same width."""
        self._require_fitted()
        assert self._features is not None and self._m is not None
        if not problems:
            return []
        embeddings = _check_embeddings(embeddings, len(problems))
        if (embeddings is None) != (self._embedding_dim is None):
            state = "with" if self._embedding_dim else "without"
            raise ValueError(f"the predictor was fit {state} embeddings; pass the same kind to predict()")
        if embeddings is not None and embeddings.shape[1] != self._embedding_dim:
            raise ValueError(
                f"embeddings have width {embeddings.shape[1]}, the predictor was fit on {self._embedding_dim}"
            )
        ids = []
        for i, row in enumerate(problems):
            if not row.get("problem_id"):
                raise ValueError(f"problem at row {i} has no problem_id")
            ids.append(str(row["problem_id"]))
        frame = _frame(problems, embeddings)
        p = np.clip(self._predict_rows(self._features, self._model, frame, self._oof_k, self._oof_n), *P_CLIP)
        return self._predictions(ids, p)

    def _predictions(self, ids: list[str], p: np.ndarray) -> list[Prediction]:
        assert self._m is not None
        alpha, beta_ = self._m * p, self._m * (1 - p)
        lo, hi = _beta_interval(alpha, beta_, self.level)
        return [
            Prediction(pid, float(pi), float(a), float(b), float(low), float(high))
            for pid, pi, a, b, low, high in zip(ids, p, alpha, beta_, lo, hi, strict=True)
        ]

    @property
    def pseudo_count(self) -> float:
        """m: how many rollouts one prediction is worth, from the cross-fitted beta-binomial likelihood."""
        self._require_fitted()
        assert self._m is not None
        return self._m

    @property
    def oof_predictions(self) -> list[Prediction]:
        """Out-of-fold predictions on the graded training problems (each made by a model that did not see it)."""
        self._require_fitted()
        return self._predictions(self._oof_ids, self._oof_p)

    def reliability_table(self, bins: int = 5) -> list[dict]:
        """Calibration of the out-of-fold predictions, per equal-width bin of predicted p (empty bins skipped).

        `coverage` is the fraction of problems whose observed k lies in the central `level` interval of their
        beta-binomial(n, m·p, m·(1-p)) predictive distribution; for a discrete distribution that interval holds
        at least `level` of the mass, so a well-calibrated m gives coverage at or a little above `level`.
        """
        self._require_fitted()
        assert self._m is not None
        if bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        p, k, n = self._oof_p, self._oof_k, self._oof_n
        lo, hi = betabinom.interval(self.level, n, self._m * p, self._m * (1 - p))
        inside = (k >= lo) & (k <= hi)
        which = np.minimum((p * bins).astype(int), bins - 1)
        table = []
        for b in range(bins):
            mask = which == b
            if not mask.any():
                continue
            table.append(
                {
                    "bin_lo": b / bins,
                    "bin_hi": (b + 1) / bins,
                    "problems": int(mask.sum()),
                    "mean_predicted": float(p[mask].mean()),
                    "observed_pass_rate": float(k[mask].sum() / n[mask].sum()),
                    "coverage": float(inside[mask].mean()),
                }
            )
        return table

    # ------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """Write the fitted predictor as `path` (a `.json` manifest) and its arrays beside it (same stem, `.npz`).

        Each file is written atomically (temp file in the same directory, then os.replace); the arrays go first and
        the manifest, which records their sha256, last. Nothing in either file is a pickle.
        """
        self._require_fitted()
        assert self._features is not None and self._m is not None
        manifest_path, arrays_path = _predictor_files(path)
        arrays = self._arrays()
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        data = buffer.getvalue()
        manifest = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "method": PREDICTOR_METHOD,
            "arrays_file": arrays_path.name,
            "arrays_sha256": hashlib.sha256(data).hexdigest(),
            "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in sorted(arrays.items())},
            "hyperparameters": {"c": self.c, "folds": self.folds, "seed": self.seed, "level": self.level},
            "pseudo_count": self._m,
            "embedding_dim": self._embedding_dim,
            "featurizer": _featurizer_spec(self._embedding_dim),
            "input_columns": _input_columns(self._embedding_dim),
            "n_features": int(self._features.transform(_skeleton(self._embedding_dim)).shape[1]),
            "sparse_output": bool(self._features.sparse_output_),
            "has_model": self._model is not None,
            "sklearn_version": sklearn.__version__,
        }
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(arrays_path, data)
        _write_atomic(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> PassRatePredictor:
        """Read a predictor written by `save`: `path` is its `.json` manifest, the arrays sit beside it (`.npz`).

        No pickle is ever read: the manifest is JSON, the arrays file is checked against the sha256 in the manifest
        and then read with `numpy.load(allow_pickle=False)` (an object array in it is refused, not unpickled).
        Raises ValueError naming the file when a file is missing, altered, of another format or inconsistent.
        """
        manifest_path, arrays_path = _predictor_files(path)
        try:
            manifest = json.loads(manifest_path.read_bytes())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{manifest_path} is not a predictor manifest (not JSON: {exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FILE_FORMAT:
            raise ValueError(f"{manifest_path} is not a saved PassRatePredictor (format {FILE_FORMAT!r} expected)")
        if manifest.get("format_version") != FILE_FORMAT_VERSION:
            raise ValueError(
                f"{manifest_path} has predictor format version {manifest.get('format_version')!r}, "
                f"expected {FILE_FORMAT_VERSION}; retrain it (the `predictor` asset)"
            )
        if manifest.get("arrays_file") != arrays_path.name:
            raise ValueError(
                f"{manifest_path} names arrays file {manifest.get('arrays_file')!r}, expected {arrays_path.name!r}"
            )
        if not arrays_path.is_file():
            raise ValueError(f"{arrays_path} is missing (the arrays of the predictor in {manifest_path})")
        data = arrays_path.read_bytes()  # hashed and parsed from the same bytes: no window to swap the file
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest.get("arrays_sha256"):
            raise ValueError(
                f"{arrays_path} has sha256 {digest}, but {manifest_path} records {manifest.get('arrays_sha256')}: "
                "the arrays file was altered or only partly written; retrain it (the `predictor` asset)"
            )
        try:
            archive = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with archive:
                arrays = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            # numpy refuses object (pickled) arrays and pickle files outright when allow_pickle=False
            raise ValueError(f"{arrays_path} is not an archive of plain arrays, refused: {exc}") from exc
        try:
            return cls._from_saved(manifest, arrays)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{manifest_path} / {arrays_path.name}: inconsistent saved predictor: {exc}") from exc

    def _categories(self) -> list[list[str]]:
        assert self._features is not None
        return [[str(c) for c in cats] for cats in self._features.named_transformers_["category"].categories_]

    def _arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as plain arrays (no object dtype): what `save` writes to the `.npz`."""
        assert self._features is not None
        named = self._features.named_transformers_
        tfidf = named["question"]
        terms = [""] * len(tfidf.vocabulary_)
        for term, index in tfidf.vocabulary_.items():
            terms[index] = term
        arrays: dict[str, np.ndarray] = {"question_idf": np.asarray(tfidf.idf_, dtype=np.float64)}
        _pack_strings(arrays, "question_vocabulary", terms)
        for column, cats in zip(_CATEGORIES, self._categories(), strict=True):
            _pack_strings(arrays, f"{column}_categories", cats)
        scalers = [("numeric", named["numeric"])] + ([("embedding", named["embedding"])] if self._embedding_dim else [])
        for name, scaler in scalers:
            for attribute in ("mean_", "var_", "scale_"):
                arrays[f"{name}_{attribute[:-1]}"] = np.asarray(getattr(scaler, attribute), dtype=np.float64)
        if self._model is not None:
            arrays["model_coef"] = np.asarray(self._model.coef_, dtype=np.float64)
            arrays["model_intercept"] = np.asarray(self._model.intercept_, dtype=np.float64)
            arrays["model_classes"] = np.asarray(self._model.classes_, dtype=np.float64)
        _pack_strings(arrays, "oof_ids", self._oof_ids)
        arrays["oof_p"] = np.asarray(self._oof_p, dtype=np.float64)
        arrays["oof_k"] = np.asarray(self._oof_k, dtype=np.int64)
        arrays["oof_n"] = np.asarray(self._oof_n, dtype=np.int64)
        return arrays

    @classmethod
    def _from_saved(cls, manifest: dict, arrays: dict[str, np.ndarray]) -> PassRatePredictor:
        """Rebuild a fitted predictor from its manifest and arrays: fit the same transformer and model on a two-row
        skeleton (so every fitted attribute sklearn expects exists), then install the saved parameters."""
        hyper = manifest["hyperparameters"]
        predictor = cls(c=float(hyper["c"]), folds=int(hyper["folds"]), seed=int(hyper["seed"]), level=hyper["level"])
        dim = manifest["embedding_dim"]
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ValueError(f"embedding_dim must be a positive integer or null, got {dim!r}")
        if manifest["featurizer"] != _featurizer_spec(dim) or manifest["input_columns"] != _input_columns(dim):
            raise ValueError("it was saved with other featurizer settings than this version uses; retrain it")
        for name, spec in manifest["arrays"].items():
            if (
                name not in arrays
                or arrays[name].dtype.str != spec["dtype"]
                or list(arrays[name].shape) != spec["shape"]
            ):
                raise ValueError(f"array {name!r} does not match its manifest entry {spec}")
        extra = set(arrays) - set(manifest["arrays"])
        if extra:
            raise ValueError(f"unexpected arrays {sorted(extra)}")
        terms = _unpack_strings(arrays, "question_vocabulary")
        idf = _float_vector(arrays, "question_idf", len(terms))
        categories = [_unpack_strings(arrays, f"{column}_categories") for column in _CATEGORIES]
        features = _featurizer(dim, {term: i for i, term in enumerate(terms)}, categories)
        skeleton = _skeleton(dim)
        features.fit(skeleton)
        named = features.named_transformers_
        named["question"].idf_ = idf
        scalers = [("numeric", len(_NUMERIC))] + ([("embedding", dim)] if dim else [])
        for name, width in scalers:
            for attribute in ("mean_", "var_", "scale_"):
                setattr(named[name], attribute, _float_vector(arrays, f"{name}_{attribute[:-1]}", width))
        features.sparse_output_ = bool(manifest["sparse_output"])
        width = features.transform(skeleton).shape[1]
        if width != manifest["n_features"]:
            raise ValueError(f"the rebuilt features have width {width}, the manifest says {manifest['n_features']}")
        model = None
        if manifest["has_model"]:
            coef, intercept = arrays["model_coef"], arrays["model_intercept"]
            classes = arrays["model_classes"]
            if coef.shape != (1, width) or intercept.shape != (1,) or not np.array_equal(classes, [0.0, 1.0]):
                raise ValueError(f"model arrays have shapes {coef.shape}, {intercept.shape} and classes {classes}")
            model = LogisticRegression(C=predictor.c, solver="lbfgs", max_iter=2000)
            model.fit(sp.csr_matrix((2, width)), np.array([0.0, 1.0]))
            model.coef_, model.intercept_, model.classes_ = coef, intercept, classes
        ids = _unpack_strings(arrays, "oof_ids")
        oof_p = _float_vector(arrays, "oof_p", len(ids))
        oof_k, oof_n = arrays["oof_k"], arrays["oof_n"]
        if (
            oof_k.shape != (len(ids),)
            or oof_n.shape != (len(ids),)
            or oof_k.dtype != np.int64
            or oof_n.dtype != np.int64
        ):
            raise ValueError("out-of-fold counts do not match the out-of-fold ids")
        m = float(manifest["pseudo_count"])
        if not PSEUDO_COUNT_BOUNDS[0] <= m <= PSEUDO_COUNT_BOUNDS[1]:
            raise ValueError(f"pseudo_count {m} is outside {PSEUDO_COUNT_BOUNDS}")
        predictor._features, predictor._model, predictor._embedding_dim, predictor._m = features, model, dim, m
        predictor._oof_ids, predictor._oof_p, predictor._oof_k, predictor._oof_n = ids, oof_p, oof_k, oof_n
        return predictor


def _predictor_files(path: Path) -> tuple[Path, Path]:
    """(manifest, arrays) for a predictor saved at `path`, which must name the `.json` manifest."""
    path = Path(path)
    if path.suffix != MANIFEST_SUFFIX:
        raise ValueError(
            f"{path}: a saved predictor is a {MANIFEST_SUFFIX} manifest with its {ARRAYS_SUFFIX} arrays beside it; "
            "pickled predictors (.joblib) from earlier versions are never loaded — retrain with the `predictor` asset"
        )
    return path, path.with_suffix(ARRAYS_SUFFIX)


def _featurizer_spec(embedding_dim: int | None) -> dict[str, object]:
    """The featurizer settings a saved predictor records; loading requires the current code to use the same."""
    return {
        "question": {**_TFIDF, "norm": "l2", "use_idf": True, "smooth_idf": True, "lowercase": True},
        "category": _CATEGORIES,
        "numeric": _NUMERIC,
        "passthrough": ["knob_missing"],
        "embedding_dim": embedding_dim,
    }


def _input_columns(embedding_dim: int | None) -> list[str]:
    """The columns the feature transformer reads (see `_frame`)."""
    return _INPUT_COLUMNS + [f"emb_{i}" for i in range(embedding_dim or 0)]


def _skeleton(embedding_dim: int | None) -> pd.DataFrame:
    """Two blank problems: enough rows to fit the transformer's structure before the saved values go in."""
    return _frame([{}, {}], None if not embedding_dim else np.zeros((2, embedding_dim)))


def _pack_strings(arrays: dict[str, np.ndarray], name: str, values: Sequence[str]) -> None:
    """Strings as one UTF-8 byte array plus end offsets: exact for any text, and no object (pickled) array."""
    encoded = [v.encode("utf-8") for v in values]
    arrays[f"{name}_utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    arrays[f"{name}_ends"] = np.cumsum([len(e) for e in encoded], dtype=np.int64)


def _unpack_strings(arrays: Mapping[str, np.ndarray], name: str) -> list[str]:
    raw, ends = arrays[f"{name}_utf8"], arrays[f"{name}_ends"]
    if raw.dtype != np.uint8 or raw.ndim != 1 or ends.dtype != np.int64 or ends.ndim != 1:
        raise ValueError(f"{name} is not a UTF-8 byte array with int64 end offsets")
    if ends.size and (np.any(np.diff(ends) < 0) or ends[0] < 0 or ends[-1] != raw.size):
        raise ValueError(f"{name} offsets do not cover its bytes")
    if not ends.size and raw.size:
        raise ValueError(f"{name} has bytes but no offsets")
    data = raw.tobytes()
    starts = [0, *ends[:-1].tolist()]
    return [data[a:b].decode("utf-8") for a, b in zip(starts, ends.tolist(), strict=True)]


def _float_vector(arrays: Mapping[str, np.ndarray], name: str, size: int) -> np.ndarray:
    value = arrays[name]
    if value.dtype != np.float64 or value.shape != (size,):
        raise ValueError(f"{name} has dtype {value.dtype} and shape {value.shape}, expected float64 ({size},)")
    return value


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same directory and os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fit_pseudo_count(p: np.ndarray, k: np.ndarray, n: np.ndarray) -> float:
    """The m in PSEUDO_COUNT_BOUNDS maximising Σ log BetaBinom(k | n, m·p, m·(1-p)) over held-out problems.

    Small m means the counts scatter far around the predictions (the predictor is worth few rollouts); m at the
    upper bound means they look binomial around p, i.e. the predictor is as good as this data can show.
    """

    def negative_log_likelihood(log_m: float) -> float:
        m = math.exp(log_m)
        return -float(betabinom.logpmf(k, n, m * p, m * (1 - p)).sum())

    # Searched on log m: the likelihood changes about as much from 1 to 2 as from 32 to 64.
    low, high = (math.log(b) for b in PSEUDO_COUNT_BOUNDS)
    result = minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(min(max(math.exp(result.x), PSEUDO_COUNT_BOUNDS[0]), PSEUDO_COUNT_BOUNDS[1]))


def screen(predictions: list[Prediction], too_hard: float = 0.1, too_easy: float = 0.9) -> dict[str, str]:
    """problem_id → "too_hard" / "too_easy" for the problems whose whole predicted interval lies at or below
    `too_hard` / at or above `too_easy`. Problems the predictor is not sure about are absent: grade them."""
    verdicts: dict[str, str] = {}
    for pred in predictions:
        if pred.hi <= too_hard:
            verdicts[pred.problem_id] = "too_hard"
        elif pred.lo >= too_easy:
            verdicts[pred.problem_id] = "too_easy"
    return verdicts


def priority(predictions: list[Prediction]) -> list[str]:
    """Problem ids, most useful first: by |p - 0.5| (PCL's τ = 0.5 selection), ties broken by problem_id."""
    # Rounded so that rates equally far from τ in decimal (0.45, 0.55) tie despite binary floating point.
    return [
        pred.problem_id
        for pred in sorted(predictions, key=lambda pred: (round(abs(pred.p - _TAU), 12), pred.problem_id))
    ]
