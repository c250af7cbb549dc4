"""The learned pass-rate predictor (methods §6) on a synthetic pool whose true pass rate is known."""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import random
from pathlib import Path

import joblib
import numpy as np
import pytest
from scipy.stats import spearmanr

from scoring.grading.predictor import PSEUDO_COUNT_BOUNDS, PassRatePredictor, Prediction, priority, screen

FAMILIES = {"arith": 2.5, "fractions": 1.0, "logic": -0.5, "geometry": -1.5}  # base logit at knob 3
SLOPE = 0.9  # logit drop per knob step
N_ROLLOUTS = 16
LATENT_SD = 0.7  # sd of the per-problem logit offset that no feature carries

_TEMPLATES = {
    "arith": "Compute {expr}. Give the final integer.",
    "fractions": "Simplify the sum of fractions {expr} and write it in lowest terms.",
    "logic": "Each statement {expr} is made by a knight or a knave. Who is lying?",
    "geometry": "A polygon has sides {expr}. Find its area to the nearest unit.",
}


def true_rate(family: str, knob: int, twist: float = 0.0) -> float:
    return 1 / (1 + math.exp(-(FAMILIES[family] - SLOPE * (knob - 3) + twist)))


def make_pool(count: int, seed: int) -> tuple[list[dict], np.ndarray]:
    rnd = random.Random(seed)
    problems, rates = [], []
    families = sorted(FAMILIES)
    for i in range(count):
        family = families[i % len(families)]
        knob = rnd.randint(1, 5)
        # Harder knobs bring more operands: the text carries the knob too, not only the metadata.
        expr = " , ".join(str(rnd.randint(1, 10 ** rnd.randint(1, 3))) for _ in range(knob + 1))
        problems.append(
            {
                "problem_id": f"{family}-{seed}-{i:04d}",
                "question": _TEMPLATES[family].format(expr=expr),
                "family": family,
                "difficulty_knob": knob,
                "source": "procedural" if rnd.random() < 0.8 else "seeded",
            }
        )
        # A per-problem twist the features cannot see, so the predictor is worth a finite number of rollouts.
        rates.append(true_rate(family, knob, twist=rnd.gauss(0.0, LATENT_SD)))
    return problems, np.array(rates)


def draw_counts(rates: np.ndarray, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(k), N_ROLLOUTS) for k in rng.binomial(N_ROLLOUTS, rates)]


@pytest.fixture(scope="module")
def pool() -> dict:
    train, train_p = make_pool(400, seed=1)
    held, held_p = make_pool(160, seed=2)
    counts = draw_counts(train_p, seed=3)
    predictor = PassRatePredictor().fit(train, counts)
    return {"train": train, "counts": counts, "held": held, "held_p": held_p, "predictor": predictor}


def test_held_out_predictions_rank_with_true_rate(pool: dict) -> None:
    preds = pool["predictor"].predict(pool["held"])
    assert [p.problem_id for p in preds] == [row["problem_id"] for row in pool["held"]]
    rho = spearmanr([p.p for p in preds], pool["held_p"]).statistic
    print(f"held-out Spearman rho = {rho:.3f}")
    assert rho > 0.7
    for p in preds:
        assert 0.01 <= p.p <= 0.99
        assert 0.0 <= p.lo < p.hi <= 1.0
        assert p.alpha + p.beta == pytest.approx(pool["predictor"].pseudo_count)
        assert p.alpha / (p.alpha + p.beta) == pytest.approx(p.p)


def test_pseudo_count_finite_and_bounded(pool: dict) -> None:
    m = pool["predictor"].pseudo_count
    print(f"pseudo-count m = {m:.3f}")
    assert math.isfinite(m)
    # The latent per-problem twist overdisperses the counts, so the optimum is interior, not pinned to a bound.
    assert PSEUDO_COUNT_BOUNDS[0] < m < PSEUDO_COUNT_BOUNDS[1] - 1


def test_reliability_table_tracks_observed_rate(pool: dict) -> None:
    table = pool["predictor"].reliability_table(bins=5)
    for row in table:
        print(row)
    assert sum(row["problems"] for row in table) == len(pool["train"])
    big = [row for row in table if row["problems"] >= 10]
    assert len(big) >= 3  # the pool spans easy to hard, so the check below is not vacuous
    for row in big:
        assert row["bin_lo"] <= row["mean_predicted"] <= row["bin_hi"]
        assert abs(row["mean_predicted"] - row["observed_pass_rate"]) < 0.15
        assert 0.0 <= row["coverage"] <= 1.0
    # With m fitted on the same held-out counts, the predictive intervals should cover about `level` overall.
    overall = sum(row["coverage"] * row["problems"] for row in table) / len(pool["train"])
    print(f"overall coverage = {overall:.3f}")
    assert overall >= 0.8


def test_oof_predictions_cover_training_problems(pool: dict) -> None:
    oof = pool["predictor"].oof_predictions
    assert [p.problem_id for p in oof] == [row["problem_id"] for row in pool["train"]]
    observed = np.array([k / n for k, n in pool["counts"]])
    assert spearmanr([p.p for p in oof], observed).statistic > 0.5


class _Payload:
    """Unpickling this creates `marker`: proof that a pickle was (or, asserted below, was not) executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _payload_bytes(marker: Path) -> bytes:
    data = pickle.dumps(_Payload(marker))
    probe = marker.with_name(marker.name + ".probe")
    pickle.loads(pickle.dumps(_Payload(probe)))  # the payload does work when unpickled ...
    assert probe.exists()
    probe.unlink()
    return data  # ... so its marker staying absent shows the loader never unpickled it


def _saved(pool: dict, tmp_path: Path) -> tuple[Path, Path]:
    path = tmp_path / "sub" / "predictor.json"
    pool["predictor"].save(path)
    return path, path.with_suffix(".npz")


def test_save_load_round_trip(pool: dict, tmp_path: Path) -> None:
    path, arrays = _saved(pool, tmp_path)
    # No temp file left behind, and no pickle written.
    assert sorted(p.name for p in path.parent.iterdir()) == ["predictor.json", "predictor.npz"]
    manifest = json.loads(path.read_text())
    assert manifest["arrays_sha256"] == hashlib.sha256(arrays.read_bytes()).hexdigest()
    assert manifest["arrays_file"] == "predictor.npz" and manifest["format_version"] == 2
    assert manifest["hyperparameters"] == {"c": 1.0, "folds": 5, "seed": 0, "level": 0.9}
    assert manifest["input_columns"][0] == "question" and manifest["embedding_dim"] is None
    with np.load(arrays, allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)
    loaded = PassRatePredictor.load(path)
    assert loaded.pseudo_count == pool["predictor"].pseudo_count
    # Identical, not merely close: the same parameters go through the same sklearn code.
    assert loaded.predict(pool["held"]) == pool["predictor"].predict(pool["held"])
    assert loaded.predict(pool["train"][:50]) == pool["predictor"].predict(pool["train"][:50])
    assert loaded.oof_predictions == pool["predictor"].oof_predictions
    assert loaded.reliability_table() == pool["predictor"].reliability_table()
    # Saving again over the files replaces both.
    loaded.save(path)
    assert PassRatePredictor.load(path).predict(pool["held"]) == pool["predictor"].predict(pool["held"])


def test_round_trip_with_embeddings_and_unicode(pool: dict, tmp_path: Path) -> None:
    train, counts = [dict(r) for r in pool["train"][:60]], pool["counts"][:60]
    for i, row in enumerate(train[:20]):
        row["question"] = f"Wie viel ist {i} × 3? Ünïcödé ∑ 数学 \x00 end"  # non-ASCII and a NUL survive exactly
        row["family"] = "família"
    rng = np.random.default_rng(5)
    predictor = PassRatePredictor(c=0.5, folds=3, seed=7, level=0.8).fit(
        train, counts, embeddings=rng.normal(size=(60, 4))
    )
    path = tmp_path / "predictor.json"
    predictor.save(path)
    loaded = PassRatePredictor.load(path)
    held, emb = train[:20] + pool["held"][:10], rng.normal(size=(30, 4))
    assert loaded.predict(held, embeddings=emb) == predictor.predict(held, embeddings=emb)
    assert (loaded.c, loaded.folds, loaded.seed, loaded.level) == (0.5, 3, 7, 0.8)
    with pytest.raises(ValueError, match="width"):
        loaded.predict(held, embeddings=emb[:, :2])


def test_tampered_arrays_file_is_refused_naming_it(pool: dict, tmp_path: Path) -> None:
    path, arrays = _saved(pool, tmp_path)
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 0x01
    arrays.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256") as raised:
        PassRatePredictor.load(path)
    assert str(arrays) in str(raised.value) and str(path) in str(raised.value)
    # A well-formed arrays file from another predictor is refused the same way.
    other = tmp_path / "other" / "predictor.json"
    PassRatePredictor(seed=1).fit(pool["train"][:40], pool["counts"][:40]).save(other)
    arrays.write_bytes(other.with_suffix(".npz").read_bytes())
    with pytest.raises(ValueError, match="sha256"):
        PassRatePredictor.load(path)
    arrays.unlink()
    with pytest.raises(ValueError, match="missing"):
        PassRatePredictor.load(path)


def test_pickle_payload_in_arrays_file_is_never_executed(pool: dict, tmp_path: Path) -> None:
    """An attacker who can write both files (and so fix up the sha256) still cannot get a pickle run."""
    path, arrays = _saved(pool, tmp_path)
    marker = tmp_path / "pwned"
    with np.load(arrays, allow_pickle=False) as archive:
        content = {name: archive[name] for name in archive.files}
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload(marker)
    content["question_idf"] = payload
    buffer = io.BytesIO()
    np.savez(buffer, **content)  # np.savez pickles the object array into the archive
    arrays.write_bytes(buffer.getvalue())
    manifest = json.loads(path.read_text())
    manifest["arrays_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    manifest["arrays"]["question_idf"] = {"dtype": "|O", "shape": [1]}
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not an archive of plain arrays") as raised:
        PassRatePredictor.load(path)
    assert str(arrays) in str(raised.value)
    assert not marker.exists()
    # A raw pickle as the arrays file, or as the manifest, is refused the same way.
    arrays.write_bytes(_payload_bytes(marker))
    manifest["arrays_sha256"] = hashlib.sha256(arrays.read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not an archive of plain arrays"):
        PassRatePredictor.load(path)
    path.write_bytes(_payload_bytes(marker))
    with pytest.raises(ValueError, match="not JSON"):
        PassRatePredictor.load(path)
    assert not marker.exists()


def test_old_joblib_file_is_never_loaded(tmp_path: Path) -> None:
    legacy, marker = tmp_path / "predictor.joblib", tmp_path / "pwned"
    legacy.write_bytes(_payload_bytes(marker))
    with pytest.raises(ValueError, match="never loaded"):
        PassRatePredictor.load(legacy)
    problems, rates = make_pool(20, seed=4)
    with pytest.raises(ValueError, match=r"\.json manifest"):  # nor written under the old name
        PassRatePredictor(folds=2).fit(problems, draw_counts(rates, seed=4)).save(legacy)
    assert not marker.exists()


def test_loading_never_calls_pickle(pool: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = _saved(pool, tmp_path)
    expected = pool["predictor"].predict(pool["held"][:20])

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the predictor loader called pickle")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(joblib, "load", forbidden)
    real_load, calls = np.load, []

    def checked_load(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("allow_pickle"))
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(np, "load", checked_load)
    loaded = PassRatePredictor.load(path)
    assert calls == [False]
    assert loaded.predict(pool["held"][:20]) == expected


def test_screen_returns_only_confident(pool: dict) -> None:
    preds = pool["predictor"].predict(pool["held"])
    verdicts = screen(preds, too_hard=0.25, too_easy=0.75)
    for p in preds:
        if p.hi <= 0.25:
            assert verdicts[p.problem_id] == "too_hard"
        elif p.lo >= 0.75:
            assert verdicts[p.problem_id] == "too_easy"
        else:
            assert p.problem_id not in verdicts
    # Boundaries are inclusive, and a wide interval never gets a verdict whatever its mean.
    handmade = [
        Prediction("hard", 0.05, 0.5, 9.5, 0.0, 0.1),
        Prediction("easy", 0.95, 9.5, 0.5, 0.9, 1.0),
        Prediction("wide-low", 0.05, 0.1, 1.9, 0.0, 0.4),
        Prediction("mid", 0.5, 5.0, 5.0, 0.3, 0.7),
    ]
    assert screen(handmade) == {"hard": "too_hard", "easy": "too_easy"}


def test_priority_orders_by_distance_to_half() -> None:
    preds = [Prediction(pid, p, 1.0, 1.0, 0.0, 1.0) for pid, p in [("d", 0.9), ("b", 0.45), ("a", 0.55), ("c", 0.2)]]
    assert priority(preds) == ["a", "b", "c", "d"]  # a and b tie at 0.05 from 0.5: id order


@pytest.mark.parametrize("bad", [(17, 16), (-1, 16), (0, -2)])
def test_bad_counts_name_the_problem(pool: dict, bad: tuple[int, int]) -> None:
    counts = list(pool["counts"][:40])
    counts[7] = bad
    with pytest.raises(ValueError, match=pool["train"][7]["problem_id"]):
        PassRatePredictor().fit(pool["train"][:40], counts)


def test_too_few_or_one_sided_counts_rejected(pool: dict) -> None:
    problems = pool["train"][:30]
    with pytest.raises(ValueError, match="at least 10 graded"):
        PassRatePredictor().fit(problems[:9], [(3, 16)] * 9)
    # Ungraded rows (n = 0) do not count toward the minimum.
    with pytest.raises(ValueError, match="at least 10 graded"):
        PassRatePredictor().fit(problems[:12], [(3, 16)] * 9 + [(0, 0)] * 3)
    with pytest.raises(ValueError, match="one outcome"):
        PassRatePredictor().fit(problems, [(16, 16)] * 30)
    with pytest.raises(ValueError, match="counts"):
        PassRatePredictor().fit(problems, [(1, 16)] * 29)


def test_ungraded_rows_are_skipped_and_n_matters(pool: dict) -> None:
    train, counts = pool["train"][:60], pool["counts"][:60]
    base = PassRatePredictor().fit(train, counts)
    extra, _ = make_pool(20, seed=9)
    padded = PassRatePredictor().fit(train + extra, counts + [(0, 0)] * 20)
    assert padded.predict(pool["held"]) == base.predict(pool["held"])
    # Same pass rates with four times the rollouts: the binomial fit must see the extra evidence.
    more = PassRatePredictor().fit(train, [(4 * k, 4 * n) for k, n in counts])
    p_base = np.array([p.p for p in base.predict(pool["held"])])
    p_more = np.array([p.p for p in more.predict(pool["held"])])
    # Four times the weight against the same L2 penalty: the fit shrinks less, so the predictions move by more than
    # float noise and spread further apart (observed: up to 0.14 in p, logit sd 2.01 vs 1.97).
    assert np.abs(p_more - p_base).max() > 0.05
    logit_sd = [float(np.std(np.log(p / (1 - p)))) for p in (p_base, p_more)]
    assert logit_sd[1] > logit_sd[0], logit_sd


def test_embedding_hook(pool: dict) -> None:
    train, counts = pool["train"][:60], pool["counts"][:60]
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(len(train), 8))
    predictor = PassRatePredictor().fit(train, counts, embeddings=emb)
    held = pool["held"][:10]
    preds = predictor.predict(held, embeddings=rng.normal(size=(10, 8)))
    assert [p.problem_id for p in preds] == [row["problem_id"] for row in held]
    assert all(0.01 <= p.p <= 0.99 and p.alpha > 0 and p.beta > 0 for p in preds)
    # The embedding columns reach the model: the same problems with other embeddings get other predictions.
    zeros = predictor.predict(held, embeddings=np.zeros((10, 8)))
    assert max(abs(a.p - b.p) for a, b in zip(preds, zeros, strict=True)) > 0.01
    with pytest.raises(ValueError, match="embeddings"):
        predictor.predict(held)
    with pytest.raises(ValueError, match="width"):
        predictor.predict(held, embeddings=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="one row per problem"):
        PassRatePredictor().fit(train, counts, embeddings=emb[:5])


def test_unfitted_predictor_refuses() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        PassRatePredictor().predict([{"problem_id": "x", "question": "q", "family": "f", "source": "s"}])
