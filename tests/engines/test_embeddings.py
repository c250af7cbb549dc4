"""The real all-MiniLM-L6-v2 embedder (the `embeddings` extra): vectors, the persistent cache, and the
embedding stages of dedup and decontamination on a real data root."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines.embeddings import EmbeddingCache, load_embedder
from engines.errors import ConfigError
from scoring.curation.decontam import BenchmarkSpec, DecontamConfig
from scoring.curation.dedup import DedupConfig
from scoring.curation.pool import DecontaminationConfig, build_contamination, build_duplicates
from scoring.schemas import PROBLEMS, to_table
from scoring.storage import DataRoot

TOWER = "How tall is the Eiffel tower in meters?"
TOWER_REWORDED = "What is the height of the Eiffel tower, measured in meters?"
UNRELATED = "Find the remainder when 2^100 is divided by 7."


@pytest.mark.slow  # loads the real embedding model
def test_vectors_are_unit_rows_and_meaning_outranks_wording() -> None:
    embed = load_embedder()
    vectors = embed([TOWER, TOWER_REWORDED, UNRELATED])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    same, other = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert same > 0.8 > other, (same, other)


@pytest.mark.slow  # loads the real embedding model
def test_cache_serves_stored_vectors_and_stores_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite"
    embed = load_embedder(cache_path=path)
    first = embed([TOWER, UNRELATED, TOWER])
    assert len(EmbeddingCache(path)) == 2  # one row per distinct text
    assert np.array_equal(embed([UNRELATED, TOWER]), first[[1, 0]])
    # a vector planted in the cache is what the embedder returns: cached texts never reach the model
    sentinel = np.full(384, 1 / np.sqrt(384), dtype=np.float32)
    EmbeddingCache(path).put_many("all-MiniLM-L6-v2", [(EmbeddingCache.key("all-MiniLM-L6-v2", "planted"), sentinel)])
    assert np.array_equal(embed(["planted"])[0], sentinel)


def test_unknown_model_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no-such-model"):
        load_embedder(str(tmp_path / "no-such-model"))


def _problem(problem_id: str, question: str, source: str = "import") -> dict[str, object]:
    return {"problem_id": problem_id, "source": source, "family": "gsm8k", "question": question, "answer": "1"}


@pytest.mark.slow  # loads the real embedding model
def test_embedding_stages_catch_a_reworded_duplicate_and_a_reworded_leak(shared_dir: Path, tmp_path: Path) -> None:
    item = json.loads((shared_dir / "data/gsm8k/test.jsonl").read_text().splitlines()[0])["question"]
    # "Janet's ducks lay 16 eggs per day. ..." rewritten by hand, sharing almost no 8-gram with the original
    leak = (
        "Every day Janet's ducks produce 16 eggs. Three of them she eats for breakfast each morning and four go "
        "into muffins she bakes for her friends daily. The rest are sold at the farmers' market at $2 per egg. "
        "What are her daily earnings in dollars at the farmers' market?"
    )
    problems = [
        _problem("tower", TOWER),
        _problem("tower-reworded", TOWER_REWORDED),
        _problem("unrelated", UNRELATED),
        _problem("leak", leak),
    ]
    root = DataRoot(tmp_path / "root")
    root.write_table("problems", to_table(problems, PROBLEMS))
    dedup = DedupConfig(semantic="embedding", embedding_threshold=0.8, skip_sources=())
    duplicates, counts = build_duplicates(dedup, root)
    assert [(r["problem_id"], r["kept_id"], r["method"]) for r in duplicates.to_pylist()] == [
        ("tower-reworded", "tower", "embedding")
    ]
    assert counts["dropped_embedding"] == 1
    gsm8k = BenchmarkSpec(name="gsm8k_test", path=str(shared_dir / "data/gsm8k/test.jsonl"), preset="gsm8k")
    without = DecontaminationConfig(benchmarks=[gsm8k], detectors=DecontamConfig(tfidf=False))
    table, _ = build_contamination(without, root, tmp_path)
    assert "leak" not in table.column("problem_id").to_pylist(), "n-grams alone miss this rewording"
    with_embedding = DecontaminationConfig(
        benchmarks=[gsm8k], detectors=DecontamConfig(tfidf=False, embedding_model="all-MiniLM-L6-v2")
    )
    table, counts = build_contamination(with_embedding, root, tmp_path)
    rows = [r for r in table.to_pylist() if r["method"] == "embedding"]
    assert [(r["problem_id"], r["matched_text"][:40]) for r in rows] == [("leak", item[:40])]
    assert counts["flagged_gsm8k_test"] == 1
    assert len(EmbeddingCache(root.embedding_cache_path)) >= 1319  # the benchmark was embedded once and kept
