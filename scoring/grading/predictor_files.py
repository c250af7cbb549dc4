"""A saved pass-rate predictor (`../shared/methods.md` §6): two files that cannot run code when read.

`<name>.npz` holds the fitted parameters as plain numeric arrays (TF-IDF vocabulary and idf, one-hot categories,
scaler means and scales, logistic coefficients, out-of-fold evidence; strings as UTF-8 bytes), read with
`numpy.load(allow_pickle=False)`; `<name>.json` is the manifest: format version, hyperparameters, featurizer
settings, input columns, the pseudo-count and the sha256 of the `.npz`, checked before the arrays are read. The
sklearn objects are rebuilt from those values. Pickled predictors (`predictor.joblib`, written by earlier
versions) are never loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression

from scoring.grading.predictor_features import CATEGORIES, NUMERIC, featurizer, logistic_regression, skeleton_frame

FILE_FORMAT = "gradus.pass_rate_predictor"
FILE_FORMAT_VERSION = 2  # 1 was a joblib pickle, never read any more
MANIFEST_SUFFIX = ".json"
ARRAYS_SUFFIX = ".npz"


def predictor_files(path: Path) -> tuple[Path, Path]:
    """(manifest, arrays) for a predictor saved at `path`, which must name the `.json` manifest."""
    path = Path(path)
    if path.suffix != MANIFEST_SUFFIX:
        raise ValueError(
            f"{path}: a saved predictor is a {MANIFEST_SUFFIX} manifest with its {ARRAYS_SUFFIX} arrays beside it; "
            "pickled predictors (.joblib) from earlier versions are never loaded — retrain with the `predictor` asset"
        )
    return path, path.with_suffix(ARRAYS_SUFFIX)


# ---- writing ---------------------------------------------------------------------------------------------------


def _category_values(features: ColumnTransformer) -> list[list[str]]:
    """The fitted one-hot categories, one list per column of `CATEGORIES`."""
    return [[str(c) for c in cats] for cats in features.named_transformers_["category"].categories_]


def feature_arrays(features: ColumnTransformer, embedding_dim: int | None) -> dict[str, np.ndarray]:
    """The fitted transformer as plain arrays (no object dtype): vocabulary and idf, categories, scalers."""
    named = features.named_transformers_
    tfidf = named["question"]
    terms = [""] * len(tfidf.vocabulary_)
    for term, index in tfidf.vocabulary_.items():
        terms[index] = term
    arrays: dict[str, np.ndarray] = {"question_idf": np.asarray(tfidf.idf_, dtype=np.float64)}
    pack_strings(arrays, "question_vocabulary", terms)
    for column, cats in zip(CATEGORIES, _category_values(features), strict=True):
        pack_strings(arrays, f"{column}_categories", cats)
    scalers = [("numeric", named["numeric"])] + ([("embedding", named["embedding"])] if embedding_dim else [])
    for name, scaler in scalers:
        for attribute in ("mean_", "var_", "scale_"):
            arrays[f"{name}_{attribute[:-1]}"] = np.asarray(getattr(scaler, attribute), dtype=np.float64)
    return arrays


def model_arrays(model: LogisticRegression | None) -> dict[str, np.ndarray]:
    """The logistic regression's coefficients, intercept and classes (none for a pooled-rate fallback)."""
    if model is None:
        return {}
    return {
        "model_coef": np.asarray(model.coef_, dtype=np.float64),
        "model_intercept": np.asarray(model.intercept_, dtype=np.float64),
        "model_classes": np.asarray(model.classes_, dtype=np.float64),
    }


def write_saved(manifest_path: Path, arrays_path: Path, arrays: dict[str, np.ndarray], fields: dict) -> None:
    """Write `arrays` as the `.npz` and then the manifest (`fields` plus the format, the arrays file, its sha256
    and each array's dtype and shape), each atomically: the manifest, which vouches for the arrays, goes last."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    data = buffer.getvalue()
    manifest = {
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "arrays_file": arrays_path.name,
        "arrays_sha256": hashlib.sha256(data).hexdigest(),
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in sorted(arrays.items())},
        **fields,
    }
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(arrays_path, data)
    _write_atomic(manifest_path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def pack_strings(arrays: dict[str, np.ndarray], name: str, values: Sequence[str]) -> None:
    """Strings as one UTF-8 byte array plus end offsets: exact for any text, and no object (pickled) array."""
    encoded = [v.encode("utf-8") for v in values]
    arrays[f"{name}_utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    arrays[f"{name}_ends"] = np.cumsum([len(e) for e in encoded], dtype=np.int64)


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


# ---- reading ---------------------------------------------------------------------------------------------------


def read_saved(manifest_path: Path, arrays_path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and the arrays of a saved predictor, checked: the manifest is JSON of this format and
    version, the arrays file is the one it names and has the sha256 it records, and holds plain arrays only (an
    object array is refused, not unpickled). Raises ValueError naming the file otherwise."""
    manifest = _read_manifest(manifest_path, arrays_path)
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
    return manifest, arrays


def _read_manifest(manifest_path: Path, arrays_path: Path) -> dict:
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
    return manifest


def check_array_specs(manifest: dict, arrays: Mapping[str, np.ndarray]) -> None:
    """ValueError unless `arrays` are exactly the arrays the manifest lists, with its dtypes and shapes."""
    for name, spec in manifest["arrays"].items():
        if name not in arrays or arrays[name].dtype.str != spec["dtype"] or list(arrays[name].shape) != spec["shape"]:
            raise ValueError(f"array {name!r} does not match its manifest entry {spec}")
    extra = set(arrays) - set(manifest["arrays"])
    if extra:
        raise ValueError(f"unexpected arrays {sorted(extra)}")


def rebuild_features(manifest: dict, arrays: Mapping[str, np.ndarray], dim: int | None) -> ColumnTransformer:
    """The fitted transformer: fit on a two-row skeleton (so every fitted attribute sklearn expects exists), then
    the saved vocabulary, categories, idf and scaler values installed; its width is checked against the manifest."""
    terms = unpack_strings(arrays, "question_vocabulary")
    idf = float_vector(arrays, "question_idf", len(terms))
    categories = [unpack_strings(arrays, f"{column}_categories") for column in CATEGORIES]
    features = featurizer(dim, {term: i for i, term in enumerate(terms)}, categories)
    skeleton = skeleton_frame(dim)
    features.fit(skeleton)
    named = features.named_transformers_
    named["question"].idf_ = idf
    scalers = [("numeric", len(NUMERIC))] + ([("embedding", dim)] if dim else [])
    for name, width in scalers:
        for attribute in ("mean_", "var_", "scale_"):
            setattr(named[name], attribute, float_vector(arrays, f"{name}_{attribute[:-1]}", width))
    features.sparse_output_ = bool(manifest["sparse_output"])
    width = features.transform(skeleton).shape[1]
    if width != manifest["n_features"]:
        raise ValueError(f"the rebuilt features have width {width}, the manifest says {manifest['n_features']}")
    return features


def rebuild_model(arrays: Mapping[str, np.ndarray], width: int, c: float) -> LogisticRegression:
    """The fitted logistic regression over `width` features, its saved coefficients installed."""
    coef, intercept = arrays["model_coef"], arrays["model_intercept"]
    classes = arrays["model_classes"]
    if coef.shape != (1, width) or intercept.shape != (1,) or not np.array_equal(classes, [0.0, 1.0]):
        raise ValueError(f"model arrays have shapes {coef.shape}, {intercept.shape} and classes {classes}")
    model = logistic_regression(c)
    model.fit(sp.csr_matrix((2, width)), np.array([0.0, 1.0]))
    model.coef_, model.intercept_, model.classes_ = coef, intercept, classes
    return model


def unpack_strings(arrays: Mapping[str, np.ndarray], name: str) -> list[str]:
    """The strings `pack_strings` stored under `name`, with the offsets checked."""
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


def float_vector(arrays: Mapping[str, np.ndarray], name: str, size: int) -> np.ndarray:
    """`arrays[name]`, which must be a float64 vector of length `size`."""
    value = arrays[name]
    if value.dtype != np.float64 or value.shape != (size,):
        raise ValueError(f"{name} has dtype {value.dtype} and shape {value.shape}, expected float64 ({size},)")
    return value
