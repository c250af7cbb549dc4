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

A saved predictor is a JSON manifest and an `.npz` of plain arrays, never a pickle (`predictor_files.py`); the
features live in `predictor_features.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from scipy.optimize import minimize_scalar
from scipy.stats import beta as beta_dist
from scipy.stats import betabinom
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from scoring.grading.predictor_features import (
    check_embeddings,
    featurizer,
    featurizer_spec,
    input_columns,
    logistic_regression,
    problem_frame,
    skeleton_frame,
)
from scoring.grading.predictor_files import (
    check_array_specs,
    feature_arrays,
    float_vector,
    model_arrays,
    pack_strings,
    predictor_files,
    read_saved,
    rebuild_features,
    rebuild_model,
    unpack_strings,
    write_saved,
)

PREDICTOR_METHOD = "predicted_v1"

P_CLIP = (0.01, 0.99)  # a predicted 0 or 1 would make the Beta degenerate and the beta-binomial fit -inf
PSEUDO_COUNT_BOUNDS = (0.5, 64.0)
_TAU = 0.5  # PCL's target expected reward


@dataclass(frozen=True)
class Prediction:
    """Predicted pass rate of one problem and the Beta(alpha, beta) belief around it."""

    problem_id: str
    p: float
    alpha: float
    beta: float
    lo: float  # equal-tailed interval of Beta(alpha, beta) at the predictor's level
    hi: float


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
        embeddings = check_embeddings(embeddings, len(problems))
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
        frame = problem_frame(graded, emb)

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
        features = featurizer(self._embedding_dim)
        x = features.fit_transform(frame)
        if k.sum() == 0 or k.sum() == n.sum():
            return features, None  # a fold with one outcome only: fall back to its pooled rate
        rows = np.arange(len(frame))
        # Binomial likelihood: label 1 with weight k, label 0 with weight n - k; zero-weight rows are dropped.
        index = np.concatenate([rows[k > 0], rows[n - k > 0]])
        labels = np.concatenate([np.ones(int((k > 0).sum())), np.zeros(int((n - k > 0).sum()))])
        weights = np.concatenate([k[k > 0], (n - k)[n - k > 0]]).astype(np.float64)
        model = logistic_regression(self.c)
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
        embeddings = check_embeddings(embeddings, len(problems))
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
        frame = problem_frame(problems, embeddings)
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
        manifest_path, arrays_path = predictor_files(path)
        arrays = {**feature_arrays(self._features, self._embedding_dim), **model_arrays(self._model)}
        pack_strings(arrays, "oof_ids", self._oof_ids)
        arrays["oof_p"] = np.asarray(self._oof_p, dtype=np.float64)
        arrays["oof_k"] = np.asarray(self._oof_k, dtype=np.int64)
        arrays["oof_n"] = np.asarray(self._oof_n, dtype=np.int64)
        fields = {
            "method": PREDICTOR_METHOD,
            "hyperparameters": {"c": self.c, "folds": self.folds, "seed": self.seed, "level": self.level},
            "pseudo_count": self._m,
            "embedding_dim": self._embedding_dim,
            "featurizer": featurizer_spec(self._embedding_dim),
            "input_columns": input_columns(self._embedding_dim),
            "n_features": int(self._features.transform(skeleton_frame(self._embedding_dim)).shape[1]),
            "sparse_output": bool(self._features.sparse_output_),
            "has_model": self._model is not None,
            "sklearn_version": sklearn.__version__,
        }
        write_saved(manifest_path, arrays_path, arrays, fields)

    @classmethod
    def load(cls, path: Path) -> PassRatePredictor:
        """Read a predictor written by `save`: `path` is its `.json` manifest, the arrays sit beside it (`.npz`).

        No pickle is ever read: the manifest is JSON, the arrays file is checked against the sha256 in the manifest
        and then read with `numpy.load(allow_pickle=False)` (an object array in it is refused, not unpickled).
        Raises ValueError naming the file when a file is missing, altered, of another format or inconsistent.
        """
        manifest_path, arrays_path = predictor_files(path)
        manifest, arrays = read_saved(manifest_path, arrays_path)
        try:
            return cls._from_saved(manifest, arrays)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{manifest_path} / {arrays_path.name}: inconsistent saved predictor: {exc}") from exc

    @classmethod
    def _from_saved(cls, manifest: dict, arrays: dict[str, np.ndarray]) -> PassRatePredictor:
        """Rebuild a fitted predictor from its manifest and arrays (`rebuild_features`, `rebuild_model`), checking
        that this version's featurizer is the one it was saved with and that the evidence is consistent."""
        hyper = manifest["hyperparameters"]
        predictor = cls(c=float(hyper["c"]), folds=int(hyper["folds"]), seed=int(hyper["seed"]), level=hyper["level"])
        dim = manifest["embedding_dim"]
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ValueError(f"embedding_dim must be a positive integer or null, got {dim!r}")
        if manifest["featurizer"] != featurizer_spec(dim) or manifest["input_columns"] != input_columns(dim):
            raise ValueError("it was saved with other featurizer settings than this version uses; retrain it")
        check_array_specs(manifest, arrays)
        features = rebuild_features(manifest, arrays, dim)
        model = rebuild_model(arrays, manifest["n_features"], predictor.c) if manifest["has_model"] else None
        ids = unpack_strings(arrays, "oof_ids")
        oof_p = float_vector(arrays, "oof_p", len(ids))
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
