"""Curriculum planning, shard writing (deterministic bytes) and the in-order reader."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.compute as pc
import pytest

from engines.errors import IntegrityError
from scoring.curriculum.shards import CurriculumReader, write_shards
from scoring.curriculum.strategies import CurriculumConfig, plan_curriculum
from scoring.schemas import PROBLEMS, to_table
from tests.scoring.conftest import graded_pool


def test_plan_orders_easy_to_hard_and_excludes_signal_free_problems() -> None:
    problems, grades = graded_pool({"p1": 1, "p2": 3, "p3": 4, "p4": 0, "p5": 2, "p6": 3, "p7": 2})
    grades = grades.filter(pc.not_equal(grades.column("problem_id"), "p7"))  # in the pool, never graded
    plan = plan_curriculum(problems, grades, student_id="s")
    assert plan.ordered.column("problem_id").to_pylist() == ["p2", "p6", "p5", "p1"]
    assert plan.ordered.column("position").to_pylist() == [0, 1, 2, 3]
    difficulty = plan.ordered.column("difficulty").to_pylist()
    assert difficulty == sorted(difficulty)
    excluded = {r["problem_id"]: r["reason"] for r in plan.excluded.to_pylist()}
    assert excluded["p3"].startswith("too_easy") and excluded["p4"].startswith("too_hard")
    assert excluded["p7"].startswith("ungraded")
    assert plan.ordered.num_rows + plan.excluded.num_rows == problems.num_rows


def test_shards_are_byte_identical_on_rewrite_and_read_back_in_order(tmp_path: Path) -> None:
    problems, grades = graded_pool({f"p{i}": i % 4 for i in range(1, 11)}, n=4)  # k=0 at p4, p8
    plan = plan_curriculum(problems, grades, student_id="s")
    config = CurriculumConfig(shard_size=3)
    manifest, curriculum = write_shards(plan, tmp_path, config=config, student_id="s", provenance={"x": "y"})
    first = {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}
    write_shards(plan, tmp_path, config=config, student_id="s", provenance={"x": "y"})
    assert {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())} == first
    assert [s["rows"] for s in manifest["shards"]] == [3, 3, 2]
    assert curriculum.column("position").to_pylist() == list(range(8))
    reader = CurriculumReader(tmp_path)
    batches = list(reader.batches(5))
    assert [len(b) for b in batches] == [5, 3] and len(reader) == 8
    positions = [row["position"] for batch in batches for row in batch]
    assert positions == list(range(8))
    difficulties = [row["difficulty"] for batch in batches for row in batch]
    assert difficulties == sorted(difficulties)


def test_fewer_shards_on_rewrite_remove_stale_ones_and_tampering_is_caught(tmp_path: Path) -> None:
    problems, grades = graded_pool({f"p{i}": 1 + i % 2 for i in range(10)})
    plan = plan_curriculum(problems, grades, student_id="s")
    write_shards(plan, tmp_path, config=CurriculumConfig(shard_size=2), student_id="s", provenance={})
    write_shards(plan, tmp_path, config=CurriculumConfig(shard_size=5), student_id="s", provenance={})
    assert sorted(p.name for p in tmp_path.glob("shard-*")) == ["shard-00000.parquet", "shard-00001.parquet"]
    (tmp_path / "shard-00001.parquet").write_bytes(b"PAR1 tampered")
    with pytest.raises(IntegrityError, match="sha256"):
        list(CurriculumReader(tmp_path).rows())


def _mixed_tables(rows: list[tuple[str, str, str, int]], n: int = 8):
    """(problem_id, source, family, k) rows → problems and grades tables."""
    problems, grades = graded_pool({pid: k for pid, _, _, k in rows}, n=n)
    where = {pid: (source, family) for pid, source, family, _ in rows}
    problems = to_table(
        [{**r, "source": where[r["problem_id"]][0], "family": where[r["problem_id"]][1]} for r in problems.to_pylist()],
        PROBLEMS,
    )
    return problems, grades


def test_staged_keeps_stages_in_order_and_shuffles_within_them_by_seed() -> None:
    problems, grades = graded_pool({f"p{i:02d}": 1 + i % 7 for i in range(28)}, n=8)  # post_mean 0.2 .. 0.8
    plans = [
        plan_curriculum(problems, grades, student_id="s", config=CurriculumConfig(strategy="staged", seed=seed))
        for seed in (0, 0, 1)
    ]
    rows = plans[0].ordered.to_pylist()
    stages = [r["stage"] for r in rows]
    assert stages == sorted(stages) and set(stages) == {0, 1, 2, 3}
    for r in rows:  # stage 0 is post_mean >= 0.75, then >= 0.5, >= 0.25, below
        assert r["stage"] == next((i for i, b in enumerate((0.75, 0.5, 0.25)) if r["post_mean"] >= b), 3)
    same, other = (p.ordered.column("problem_id").to_pylist() for p in plans[1:])
    assert same == [r["problem_id"] for r in rows] and other != same
    stage1 = [r["problem_id"] for r in rows if r["stage"] == 1]
    assert stage1 != sorted(stage1, key=lambda pid: (-_post_means(grades)[pid], pid)), "shuffled, not sorted"
    assert all(r["strategy"] == "staged_v1" for r in plans[0].excluded.to_pylist())


def _post_means(grades) -> dict[str, float]:
    return dict(zip(grades.column("problem_id").to_pylist(), grades.column("post_mean").to_pylist(), strict=True))


def test_balanced_band_keeps_the_band_closest_to_one_half_first() -> None:
    problems, grades = graded_pool({f"p{k}": k for k in range(1, 8)}, n=8)  # post_mean = (k+1)/10
    config = CurriculumConfig(strategy="balanced_band", band=(0.3, 0.6))
    plan = plan_curriculum(problems, grades, student_id="s", config=config)
    # post_mean 0.5 (p4), then 0.4 (p3) and 0.6 (p5) tie on distance → id order, then 0.3 (p2)
    assert plan.ordered.column("problem_id").to_pylist() == ["p4", "p3", "p5", "p2"]
    reasons = {r["problem_id"]: r["reason"] for r in plan.excluded.to_pylist()}
    assert sorted(reasons) == ["p1", "p6", "p7"] and all(r.startswith("out_of_band") for r in reasons.values())


def test_skill_balanced_rotates_categories_each_easy_to_hard() -> None:
    rows = [(f"a{i}", "s", "fa", 1 + i) for i in range(6)] + [(f"b{i}", "s", "fb", 2 + i) for i in range(2)]
    rows += [(f"c{i}", "s", "fc", 3 + i) for i in range(2)]
    problems, grades = _mixed_tables(rows)
    skills = {"c0": "geometry", "c1": "geometry"}  # a skill map overrides the family
    config = CurriculumConfig(strategy="skill_balanced")
    plan = plan_curriculum(problems, grades, student_id="s", config=config, categories=skills, weights={"a5": 2.5})
    ordered = plan.ordered.to_pylist()
    assert [r["category"] for r in ordered[:6]] == ["fa", "fb", "geometry"] * 2
    assert [r["category"] for r in ordered[6:]] == ["fa"] * 4
    fa = [r["problem_id"] for r in ordered if r["category"] == "fa"]
    assert fa == ["a5", "a4", "a3", "a2", "a1", "a0"]  # larger k = easier first
    assert {r["problem_id"]: r["weight"] for r in ordered}["a5"] == 2.5 and ordered[1]["weight"] == 1.0


def test_mixed_sources_hold_their_shares_in_every_prefix_and_record_the_rest() -> None:
    rows = [(f"g{i:02d}", "gsm8k", "gsm8k", 1 + i % 6) for i in range(10)]
    rows += [(f"p{i:02d}", "procedural", "arith", 1 + i % 6) for i in range(10)]
    rows += [(f"m{i}", "math", "math", 3) for i in range(3)]
    problems, grades = _mixed_tables(rows)
    config = CurriculumConfig(strategy="mixed_sources", source_mix={"gsm8k": 3, "procedural": 1})
    plan = plan_curriculum(problems, grades, student_id="s", config=config)
    sources = plan.ordered.column("source").to_pylist()
    assert sources.count("gsm8k") == 10 and sources.count("procedural") == 3  # 10 / 0.75 = 13.3 problems
    for end in range(4, len(sources) + 1, 4):
        assert sources[:end].count("procedural") == end // 4
    reasons = [r["reason"] for r in plan.excluded.to_pylist()]
    assert sum(r.startswith("over_quota: source 'procedural'") for r in reasons) == 7
    assert sum(r.startswith("not_in_mix: source 'math'") for r in reasons) == 3
    assert plan.ordered.num_rows + plan.excluded.num_rows == problems.num_rows


@pytest.mark.parametrize(
    ("shape", "expected"),
    # 256 → 87 in 3 decays over 100 problems: a new budget every 25. Exponential factor (87/256)^(1/3) = 0.69786:
    # 256, 178.65, 124.67, 87; linear: 256, 199.67, 143.33, 87.
    [("exponential", [256, 179, 125, 87]), ("linear", [256, 200, 143, 87])],
)
def test_length_budget_decays_along_the_curriculum(shape: str, expected: list[int]) -> None:
    problems, grades = graded_pool({f"p{i:03d}": 1 + i % 6 for i in range(100)}, n=8)
    budget = {"start": 256, "end": 87, "decays": 3, "shape": shape}
    plan = plan_curriculum(problems, grades, student_id="s", config=CurriculumConfig(length_budget=budget))
    budgets = plan.ordered.column("token_budget").to_pylist()
    assert [budgets[i] for i in (0, 24, 25, 50, 75, 99)] == [expected[0], expected[0], *expected[1:], expected[3]]
    assert plan_curriculum(problems, grades, student_id="s").ordered.column("token_budget").null_count == 100


def test_manifest_agrees_with_shards_and_reader_resumes_and_names_a_missing_shard(tmp_path: Path) -> None:
    problems, grades = graded_pool({f"p{i:02d}": 1 + i % 7 for i in range(20)}, n=8)
    config = CurriculumConfig(strategy="staged", shard_size=6)
    plan = plan_curriculum(problems, grades, student_id="s", config=config)
    manifest, curriculum = write_shards(plan, tmp_path, config=config, student_id="s", provenance={})
    assert manifest["strategy"] == "staged_v1" and manifest["config"]["strategy"] == "staged"
    assert sum(manifest["counts"]["per_stage"].values()) == manifest["counts"]["kept"] == plan.ordered.num_rows
    reader = CurriculumReader(tmp_path)
    everything = list(reader.rows())
    for shard in manifest["shards"]:
        rows = [r for r in everything if r["position"] >= shard["first_position"]][: shard["rows"]]
        difficulties = [r["difficulty"] for r in rows]
        assert sum(shard["difficulty_histogram"]) == shard["rows"] == len(rows)
        assert shard["difficulty_min"] == min(difficulties) and shard["difficulty_max"] == max(difficulties)
        assert shard["stages"] == sorted({r["stage"] for r in rows})
    assert [r["problem_id"] for r in everything] == curriculum.column("problem_id").to_pylist()
    assert [r["problem_id"] for r in reader.rows(start=8)] == [r["problem_id"] for r in everything[8:]]
    assert [len(b) for b in reader.batches(5, start=13)] == [5, 2]
    with pytest.raises(ValueError, match="start"):
        list(reader.rows(start=21))
    (tmp_path / "shard-00002.parquet").unlink()
    assert len(list(reader.rows(start=18))) == 2  # shards before the resume point are not read
    with pytest.raises(IntegrityError, match="shard-00002.parquet is listed .* but missing"):
        list(reader.rows(start=0))
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not a readable curriculum manifest"):
        CurriculumReader(tmp_path)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"stage_bounds": (0.25, 0.75)}, "stage_bounds"),
        ({"band": (0.8, 0.2)}, "band"),
        ({"strategy": "mixed_sources"}, "source_mix"),
        ({"strategy": "hardest_first"}, "strategy"),
        ({"source_mix": {"a": -1}}, "source_mix"),
    ],
)
def test_bad_curriculum_config_names_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CurriculumConfig(**fields)


def test_cures_weights_follow_the_gradient_bound_and_medium_problems_lead() -> None:
    problems, grades = graded_pool({f"p{i:02d}": 1 + i % 7 for i in range(70)}, n=8)  # post_mean 0.2 .. 0.8
    config = CurriculumConfig(strategy="cures", cures_temperature=0.05, seed=3)
    rows = plan_curriculum(problems, grades, student_id="s", config=config).ordered.to_pylist()
    # weight = N·ρ(x), ρ ∝ exp(sqrt(p(1−p))/τ): hand-compute for p = 0.5 against p = 0.2
    ratio = math.exp((math.sqrt(0.25) - math.sqrt(0.2 * 0.8)) / 0.05)
    by_p = {round(r["post_mean"], 3): r["weight"] for r in rows}
    assert by_p[0.5] / by_p[0.2] == pytest.approx(ratio) and sum(r["weight"] for r in rows) == pytest.approx(70)
    first, last = rows[:20], rows[-20:]
    assert sum(abs(r["post_mean"] - 0.5) for r in first) < sum(abs(r["post_mean"] - 0.5) for r in last)
    again = plan_curriculum(problems, grades, student_id="s", config=config).ordered.to_pylist()
    assert [r["problem_id"] for r in again] == [r["problem_id"] for r in rows]


def test_hard_to_easy_reverses_easy_to_hard_and_drops_the_same_problems() -> None:
    problems, grades = graded_pool({"p1": 1, "p2": 3, "p3": 4, "p4": 0, "p5": 2, "p6": 3})
    easy = plan_curriculum(problems, grades, student_id="s").ordered.column("problem_id").to_pylist()
    hard = plan_curriculum(problems, grades, student_id="s", config=CurriculumConfig(strategy="hard_to_easy"))
    assert hard.ordered.column("problem_id").to_pylist() == ["p1", "p5", "p2", "p6"]
    assert sorted(easy) == sorted(hard.ordered.column("problem_id").to_pylist())
    assert {r["problem_id"] for r in hard.excluded.to_pylist()} == {"p3", "p4"}


def test_random_keeps_signal_free_problems_and_its_order_follows_only_the_seed() -> None:
    ks = {f"p{i}": i % 5 for i in range(12)}  # k = 0 and k = n = 4 among them
    problems, grades = graded_pool(ks)
    graded = grades.filter(pc.not_equal(grades.column("problem_id"), "p11"))  # p11 never graded

    def order(seed: int, table=problems) -> list[str]:
        plan = plan_curriculum(table, graded, student_id="s", config=CurriculumConfig(strategy="random", seed=seed))
        assert [r["problem_id"] for r in plan.excluded.to_pylist()] == ["p11"], "only the ungraded one is left out"
        return plan.ordered.column("problem_id").to_pylist()

    first = order(0)
    assert sorted(first) == sorted(f"p{i}" for i in range(11)), "too easy and too hard problems stay in"
    assert order(0) == first and order(1) != first
    assert order(0, problems.take(list(reversed(range(12))))) == first, "the input order does not matter"
    assert first != sorted(first)
