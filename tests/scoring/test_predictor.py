"""The learned pass-rate predictor (methods §6) on a synthetic pool whose true pass rate is known."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from scoring.predictor import PSEUDO_COUNT_BOUNDS, PassRatePredictor, Prediction, priority, screen

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


def test_save_load_round_trip(pool: dict, tmp_path: Path) -> None:
    path = tmp_path / "sub" / "predictor.joblib"
    pool["predictor"].save(path)
    assert [p.name for p in path.parent.iterdir()] == ["predictor.joblib"]  # no temp file left behind
    loaded = PassRatePredictor.load(path)
    assert loaded.pseudo_count == pool["predictor"].pseudo_count
    assert loaded.predict(pool["held"]) == pool["predictor"].predict(pool["held"])
    assert loaded.reliability_table() == pool["predictor"].reliability_table()


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
    assert [p.p for p in more.predict(pool["held"])] != [p.p for p in base.predict(pool["held"])]


def test_embedding_hook(pool: dict) -> None:
    train, counts = pool["train"][:60], pool["counts"][:60]
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(len(train), 8))
    predictor = PassRatePredictor().fit(train, counts, embeddings=emb)
    held = pool["held"][:10]
    preds = predictor.predict(held, embeddings=rng.normal(size=(10, 8)))
    assert len(preds) == 10
    with pytest.raises(ValueError, match="embeddings"):
        predictor.predict(held)
    with pytest.raises(ValueError, match="width"):
        predictor.predict(held, embeddings=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="one row per problem"):
        PassRatePredictor().fit(train, counts, embeddings=emb[:5])


def test_unfitted_predictor_refuses() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        PassRatePredictor().predict([{"problem_id": "x", "question": "q", "family": "f", "source": "s"}])
