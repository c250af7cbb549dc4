"""The chunked, hashed TF-IDF top-1 used by decontamination at any pool size."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from scoring.curation import tfidf_top1 as module
from scoring.curation.tfidf_top1 import tfidf_top1

BENCH = [
    "a train leaves the station at 3 pm going 60 miles per hour",
    "how many ways can 5 people sit around a round table",
    "find the remainder when 2 to the 100 is divided by 7",
    "natalia sold clips to 48 of her friends in april",
]
POOL = [
    "a train leaves the station at 3 pm going 60 miles per hour!",  # a reformatted copy of item 0
    "in april natalia sold clips to 48 of her friends",  # reordered item 3
    "what is the area of a circle of radius 4",
    "solve for x when 3 x plus 7 equals 22",
    "how many ways can five people sit around a round table",
    "the sum of the interior angles of a hexagon",
]


def _sklearn_top1(pool: list[str], bench: list[str]) -> tuple[np.ndarray, np.ndarray]:
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), lowercase=False)
    matrix = vectorizer.fit_transform([*bench, *pool])
    product = (matrix[len(bench) :] @ matrix[: len(bench)].T).toarray()
    return product.argmax(axis=1), product.max(axis=1)


def test_matches_sklearn_tfidf_when_the_whole_pool_is_the_idf_sample() -> None:
    [(best, score)] = tfidf_top1(POOL, [BENCH])
    want_best, want_score = _sklearn_top1(POOL, BENCH)
    assert best.tolist() == want_best.tolist()
    assert score == pytest.approx(want_score, abs=1e-5)
    assert best[0] == 0 and score[0] > 0.9 and best[1] == 3 and score[2] < 0.5


def test_chunks_do_not_change_the_result() -> None:
    [whole] = tfidf_top1(POOL, [BENCH])
    [chunked] = tfidf_top1(POOL, [BENCH], chunk=2)
    assert whole[0].tolist() == chunked[0].tolist() and whole[1].tolist() == chunked[1].tolist()


def test_a_pool_larger_than_the_idf_sample_still_finds_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    filler = [" ".join(rng.choice(words, size=12)) for _ in range(400)]
    pool = [*filler[:200], BENCH[2] + ".", *filler[200:]]
    monkeypatch.setattr(module, "IDF_SAMPLE", 50)
    [(best, score)] = tfidf_top1(pool, [BENCH], chunk=64)
    assert best[200] == 2 and score[200] > 0.95
    assert float(np.delete(score, 200).max()) < 0.5, "unrelated text stays far below the 0.8 threshold"
    [again] = tfidf_top1(pool, [BENCH], chunk=64)
    assert again[1].tolist() == score.tolist(), "deterministic"


def test_each_benchmark_gets_its_own_idf_from_one_pass_over_the_pool() -> None:
    other = ["what is the area of a circle of radius 4 cm", "an unrelated sentence about apples"]
    first, second, empty = tfidf_top1(POOL, [BENCH, other, []])
    assert empty is None
    assert first[0].tolist() == _sklearn_top1(POOL, BENCH)[0].tolist()
    want_best, want_score = _sklearn_top1(POOL, other)
    assert second[0].tolist() == want_best.tolist() and second[1] == pytest.approx(want_score, abs=1e-5)
    assert second[0][2] == 0 and second[1][2] > 0.8
