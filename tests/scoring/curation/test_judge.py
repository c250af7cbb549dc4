"""The LLM-judge leak detector through a real `Engine` and completion cache, with a scripted backend standing in
for the teacher: verdict parsing, which pairs are asked, caching (a rerun makes no call), failed judgements kept
with their reasons, and the judge's columns in `contamination` on a real data root (old rows stay readable)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from scoring import delta_tables
from scoring.catalog import connect_catalog, refresh_catalog
from scoring.curation.decontam import Benchmark, DecontamConfig, NgramRule, decontaminate
from scoring.curation.judge import JUDGE_PROMPTS, JudgeConfig, judge_request, nearest_items, parse_verdict
from scoring.curation.pool import DecontaminationConfig, build_contamination
from scoring.schemas import CONTAMINATION, PROBLEMS, to_table
from scoring.storage import DataRoot
from tests.scoring.supervision.scripted_backend import scripted_engine

ITEMS = [
    "Tom has 5 apples and buys 7 more at the market. How many apples does he have now?",
    "A train travels 60 miles in 1.5 hours. What is its average speed in miles per hour?",
]
# Each pool question has a hand-set embedding: `leak` and `odd` sit near item 0, `clean` near item 1, `far` near
# neither. Their words share no 8-gram with any item, so only the judge can flag them.
POOL = {
    "leak": "At the shop Tom picks up seven extra apples, having five already; how many does he hold?",
    "clean": "A cyclist rides 45 km in 3 hours; find the distance covered in the first hour if she slows down.",
    "odd": "Tom owns five pears and gets seven more pears from a friend: count his pears.",
    "broken": "Five apples plus seven apples, owned by Tom: what total?",
    "far": "Name the prime factors of 391.",
}
VECTORS = {
    ITEMS[0]: [1.0, 0.0, 0.0],
    ITEMS[1]: [0.0, 1.0, 0.0],
    POOL["leak"]: [0.9, 0.1, 0.0],
    POOL["clean"]: [0.1, 0.9, 0.0],
    POOL["odd"]: [0.85, 0.0, 0.2],
    POOL["broken"]: [0.8, 0.2, 0.1],
    POOL["far"]: [0.0, 0.0, 1.0],
}


def embed(texts: list[str]) -> np.ndarray:
    return np.asarray([VECTORS[t] for t in texts], dtype=np.float32)


def teacher(user: str, sample_index: int) -> str | None:
    """The scripted judge: yes for the leak, no for the clean one, rambling for `odd`, a failed call for `broken`."""
    problem = user.split("Problem A:\n", 1)[1].split("\n\nProblem B:", 1)[0]
    if problem == POOL["leak"]:
        return "Yes."
    if problem == POOL["odd"]:
        return "Possibly; the objects differ but the structure is identical."
    if problem == POOL["broken"]:
        return None
    return "**No**"


def config(**judge: object) -> DecontamConfig:
    # 13-gram rule only and no TF-IDF: the cheap detectors flag nothing in POOL, so every pair reaches the judge
    settings = {"enabled": True, "k": 1, "min_cosine": 0.5, **judge}
    return DecontamConfig(ngrams=(NgramRule(n=13),), tfidf=False, embedding_threshold=0.999, judge=settings)


def pool() -> list[dict[str, str]]:
    return [{"problem_id": pid, "question": q} for pid, q in POOL.items()]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("yes", "yes"),
        ("Yes.", "yes"),
        ("**No**", "no"),
        ("  NO, the numbers differ", "no"),
        ("no\n\nProblem A asks", "no"),
        ("", "failed"),
        ("   ...  ", "failed"),
        ("Maybe", "failed"),
        ("The answer is yes", "failed"),  # not a clear verdict: the first word decides
        ("yes" + " x" * 200, "failed"),  # over the size limit: not read at all
        (None, "failed"),
    ],
)
def test_verdict_is_parsed_as_untrusted_text(text: str | None, verdict: str) -> None:
    parsed, reason = parse_verdict(text)
    assert parsed == verdict
    assert bool(reason) == (verdict == "failed")


def test_prompt_is_versioned_and_pinned() -> None:
    request = judge_request(JudgeConfig(), "P" * 3000, "Q")
    text = request.messages[0].content
    assert text.startswith("Are these two math problems the same problem, possibly reworded")
    assert text.endswith("Problem B:\nQ") and "P" * 1500 + "\n" in text and "P" * 1501 not in text
    assert request.sampling.temperature == 0.0 and request.sampling.max_tokens == 4
    assert set(JUDGE_PROMPTS) == {"same_problem_v1"}


def test_nearest_items_respect_k_floor_and_order() -> None:
    items = np.eye(3, dtype=np.float32)
    pool_rows = np.asarray([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [0.3, 0.3, 0.9]], dtype=np.float32)
    assert nearest_items(pool_rows, items, 2, 0.5) == [
        (0, 1, pytest.approx(0.8)),
        (0, 0, pytest.approx(0.6)),
        (1, 2, pytest.approx(1.0)),
        (2, 2, pytest.approx(0.9)),
    ]
    assert nearest_items(pool_rows, items, 1, 0.85) == [(1, 2, pytest.approx(1.0)), (2, 2, pytest.approx(0.9))]


def test_judge_flags_only_yes_keeps_every_answer_and_caches(tmp_path: Path) -> None:
    bench = Benchmark("bench", ["item-0", "item-1"], ITEMS)
    engine, backend = scripted_engine(teacher, tmp_path / "cache.sqlite")
    result = decontaminate(pool(), [bench], config(), embed=embed, judge_engine=engine)

    assert result.flagged_ids == ["leak"] and result.counts == {"bench": 1}
    [row] = result.contamination.to_pylist()
    assert (
        row["method"] == "judge" and row["benchmark_item_id"] == "item-0" and row["score"] == pytest.approx(0.99, 0.01)
    )
    assert (row["judge_verdict"], row["judge_model"], row["judge_prompt"]) == (
        "yes",
        "scripted-teacher@r1",
        "same_problem_v1",
    )
    judged = {r["problem_id"]: r for r in result.judgements.to_pylist()}
    assert set(judged) == {"leak", "clean", "odd", "broken"}  # `far` is below the cosine floor: never asked
    assert {pid: r["verdict"] for pid, r in judged.items()} == {
        "leak": "yes",
        "clean": "no",
        "odd": "failed",
        "broken": "failed",
    }
    assert "not a yes/no verdict" in judged["odd"]["reason"] and "Possibly" in judged["odd"]["reason"]
    assert judged["broken"]["reason"] == "model call failed: scripted failure"
    assert judged["clean"]["benchmark_item_id"] == "item-1"
    assert backend.calls == 4 and engine.stats.model_calls == 4
    engine.close()

    # A rerun on the same cache asks the model only what failed (a failed call is not cached) ...
    def recovered(user: str, sample_index: int) -> str | None:
        return "no" if POOL["broken"] in user else teacher(user, sample_index)

    again, backend_again = scripted_engine(recovered, tmp_path / "cache.sqlite")
    rerun = decontaminate(pool(), [bench], config(), embed=embed, judge_engine=again)
    assert backend_again.calls == 1 and again.stats.cache_hits == 3
    assert {r["problem_id"]: r["verdict"] for r in rerun.judgements.to_pylist()}["broken"] == "no"
    again.close()
    # ... and the run after that nothing, writing the same tables.
    third, backend_third = scripted_engine(recovered, tmp_path / "cache.sqlite")
    last = decontaminate(pool(), [bench], config(), embed=embed, judge_engine=third)
    assert backend_third.calls == 0 and third.stats.model_calls == 0 and third.stats.cache_hits == 4
    assert last.contamination.equals(rerun.contamination) and last.judgements.equals(rerun.judgements)
    third.close()


def test_judge_sees_only_what_the_cheaper_detectors_leave(tmp_path: Path) -> None:
    bench = Benchmark("bench", ["item-0", "item-1"], ITEMS)
    problems = [*pool(), {"problem_id": "copy", "question": ITEMS[0]}]
    VECTORS.setdefault(ITEMS[0], [1.0, 0.0, 0.0])
    engine, backend = scripted_engine(teacher, tmp_path / "cache.sqlite")
    result = decontaminate(problems, [bench], config(k=2, min_cosine=0.98), embed=embed, judge_engine=engine)
    methods = {(r["problem_id"], r["method"]) for r in result.contamination.to_pylist()}
    assert ("copy", "ngram13") in methods and ("copy", "judge") not in methods
    # at cosine ≥ 0.98 only `leak` and `clean` (0.994 each to their nearest item; their second is far below) are
    # asked; `odd` (0.97) and `broken` (0.96) are not, and `copy` was flagged by the 13-gram rule before
    judged = [(r["problem_id"], r["benchmark_item_id"]) for r in result.judgements.to_pylist()]
    assert judged == [("leak", "item-0"), ("clean", "item-1")] and backend.calls == 2
    engine.close()


def test_judge_is_off_by_default_and_validated() -> None:
    assert DecontamConfig().judge.enabled is False
    assert DecontaminationConfig().detectors.judge == JudgeConfig()
    with pytest.raises(ValidationError, match="did you mean"):
        JudgeConfig(prompt="same_problem_v2")
    with pytest.raises(ValidationError, match="embedding_model"):
        DecontaminationConfig.model_validate({"detectors": {"judge": {"enabled": True}}})
    accepted = DecontaminationConfig.model_validate(
        {"detectors": {"embedding_model": "all-MiniLM-L6-v2", "judge": {"enabled": True, "k": 2, "min_cosine": 0.7}}}
    )
    assert (accepted.detectors.judge.k, accepted.detectors.judge.min_cosine) == (2, 0.7)
    with pytest.raises(ValidationError):
        JudgeConfig(k=0)
    with pytest.raises(ValueError, match="needs an engine"):
        decontaminate(pool(), [Benchmark("b", ["i"], ITEMS[:1])], config(), embed=embed)


def test_stage_writes_judge_columns_and_old_rows_stay_readable(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "root")
    # a contamination table written before the judge existed: the old six columns only
    old_schema = pa.schema([CONTAMINATION.field(name) for name in CONTAMINATION.names[:6]])
    old = pa.Table.from_pylist(
        [
            {
                "problem_id": "p0",
                "benchmark": "b",
                "benchmark_item_id": "i",
                "score": 1.0,
                "method": "ngram13",
                "matched_text": "x",
            }
        ],  # fmt: skip
        schema=old_schema,
    )
    directory = root.table_path("contamination")
    directory.mkdir(parents=True)
    delta_tables.commit(directory, old, {}, replace=True)
    stored = root.read_table("contamination").to_pylist()
    assert stored[0]["method"] == "ngram13" and stored[0]["judge_verdict"] is None and stored[0]["judge_prompt"] is None

    benchmark = tmp_path / "bench.jsonl"
    benchmark.write_text("".join(json.dumps({"question": q, "answer": "#### 1"}) + "\n" for q in ITEMS))
    problems = [{"problem_id": pid, "question": q, "answer": "1", "source": "test"} for pid, q in POOL.items()]
    root.write_table("problems", to_table(problems, PROBLEMS))
    root.write_table("duplicates", to_table([], root_schema("duplicates")))
    settings = DecontaminationConfig.model_validate(
        {
            "benchmarks": [{"name": "bench", "path": str(benchmark), "preset": "gsm8k"}],
            "detectors": {**config().model_dump(), "embedding_model": "all-MiniLM-L6-v2"},
        }
    )
    engine, _ = scripted_engine(teacher, tmp_path / "cache.sqlite")
    table, counts = build_contamination(settings, root, tmp_path, judge_engine=engine, embed=embed)
    engine.close()
    assert counts["flagged"] == 1 and (counts["judge_yes"], counts["judge_no"], counts["judge_failed"]) == (1, 1, 2)
    refresh_catalog(root)
    con = connect_catalog(root)
    try:
        flagged = con.sql(
            "select problem_id, method, judge_verdict, judge_model, judge_prompt from contamination"
        ).fetchall()
        judged = con.sql(
            "select problem_id, verdict, reason from contamination_judgements order by problem_id"
        ).fetchall()
    finally:
        con.close()
    assert flagged == [("leak", "judge", "yes", "scripted-teacher@r1", "same_problem_v1")]
    assert [(pid, verdict) for pid, verdict, _ in judged] == [
        ("broken", "failed"),
        ("clean", "no"),
        ("leak", "yes"),
        ("odd", "failed"),
    ]
    assert judged[0][2] == "model call failed: scripted failure"


def root_schema(table: str) -> pa.Schema:
    from scoring.schemas import schema_for

    return schema_for(table)
