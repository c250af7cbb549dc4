"""Skills end to end on the real 0.5B CPU model (vocabulary → labels → profile → STAT-Syn, a DuckDB query of the
weakest skills, a free rerun), plus the pure profile/weight/balance arithmetic of `scoring/grading/skills.py`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from engines import Engine
from scoring.catalog import refresh_catalog
from scoring.config import ProjectConfig
from scoring.curriculum.strategies import plan_curriculum
from scoring.grading.rollouts import RolloutConfig
from scoring.grading.skills import (
    Attribution,
    SkillsConfig,
    balance_of,
    choose_failures,
    effective_labels,
    label_agreement,
    main_skill,
    problem_skill_weights,
    profile_rows,
    sel_weights,
    skill_balance,
)
from scoring.schemas import to_table
from scoring.stages.difficulty import build_difficulty, current_grades
from scoring.stages.problems import build_problems
from scoring.stages.roles import EngineRoles
from scoring.stages.rollouts import build_rollouts
from scoring.stages.skills import build_problem_skills, build_skill_profile, build_skill_vocabulary
from scoring.stages.stat_syn import build_stat_syn, copy_reason
from scoring.storage import DataRoot
from scoring.synthesis_schemas import PROBLEM_SKILLS
from synthesis.config import AnswerCheckConfig, SynthesisConfig
from synthesis.skills import parse_questions
from synthesis.sources import ImportSource, ProceduralSource, SourcesConfig
from tests.conftest import REPO, SMALL_MODEL
from tests.scoring.stages.conftest import MakeRoles, project_config

RECORDED = REPO / "tests" / "fixtures" / "synthesis" / "skills_completions.jsonl"

# -- pure arithmetic ---------------------------------------------------------------------------------------------


def test_sel_weights_follow_the_profile_and_average_one() -> None:
    weights = sel_weights({"a": 3, "b": 1}, ["a", "b", "c", "d"], strength=0.5)
    assert weights == {"a": 0.5 + 0.5 * 4 * 0.75, "b": 0.5 + 0.5 * 4 * 0.25, "c": 0.5, "d": 0.5}
    assert math.isclose(sum(weights.values()) / 4, 1.0)
    assert sel_weights({"a": 3}, ["a", "b"], strength=1.0) == {"a": 2.0, "b": 0.0}  # STAT-Sel: ∝ frequency
    assert sel_weights({"a": 3}, ["a", "b"], strength=0.0) == {"a": 1.0, "b": 1.0}
    assert sel_weights({}, ["a", "b"], strength=0.5) == {"a": 1.0, "b": 1.0}


def test_profile_rows_pool_grades_and_count_attributions() -> None:
    labels = {"p1": ["arith"], "p2": ["arith", "logic"], "p3": ["logic"]}
    grades = [
        {"problem_id": "p1", "n": 4, "k": 4},
        {"problem_id": "p2", "n": 4, "k": 1},
        {"problem_id": "p3", "n": 4, "k": 0},
        {"problem_id": "p4", "n": 0, "k": 0},
    ]
    attributions = [
        Attribution("p2", 0, ("logic",)),
        Attribution("p3", 1, ("logic", "arith")),
        Attribution("p3", 2, ()),  # a rejected answer: looked at, names nothing
    ]
    rows = {
        r["skill_id"]: r
        for r in profile_rows(
            student_id="s", student_revision="r", labels=labels, grades=grades, attributions=attributions, strength=1.0
        )
    }
    assert rows["arith"]["n_problems"] == 2 and rows["arith"]["pass_rate"] == 5 / 8 and rows["arith"]["n_failures"] == 3
    assert rows["logic"]["pass_rate"] == 1 / 8 and rows["logic"]["n_failures"] == 7
    assert rows["logic"]["n_fail_attributed"] == 2 and rows["logic"]["fail_share"] == 1.0
    # p2's one attribution stands for its 3 failed rollouts, p3's accepted one for its 4 (the rejected one drops out).
    assert math.isclose(rows["arith"]["fail_share"], 4 / 7)
    assert 0 < rows["arith"]["fail_share_lo"] < 4 / 7 < rows["arith"]["fail_share_hi"] < 1
    assert rows["logic"]["weight"] > rows["arith"]["weight"]


def test_fail_share_weighs_each_problem_by_its_failed_rollouts() -> None:
    """A problem failed 8 times out of 8 outweighs one failed once, however many of their failures were read."""
    labels = {"hard": ["x", "y"], "easy": ["z"]}
    grades = [{"problem_id": "hard", "n": 8, "k": 0}, {"problem_id": "easy", "n": 8, "k": 7}]
    attributions = [Attribution("hard", 0, ("x",)), Attribution("hard", 1, ("y",)), Attribution("easy", 3, ("z",))]
    rows = {
        r["skill_id"]: r
        for r in profile_rows(
            student_id="s", student_revision="r", labels=labels, grades=grades, attributions=attributions, strength=1.0
        )
    }
    assert [rows[s]["n_fail_attributed"] for s in "xyz"] == [1, 1, 1]  # the raw counts are equal ...
    shares = [rows[s]["fail_share"] for s in "xyz"]  # ... the failures they stand for are not
    assert all(math.isclose(got, want) for got, want in zip(shares, [4 / 9, 4 / 9, 1 / 9], strict=True))
    assert math.isclose(sum(rows[s]["weight"] for s in "xyz") / 3, 1.0)
    assert rows["x"]["weight"] == rows["y"]["weight"] and math.isclose(rows["x"]["weight"], 4 * rows["z"]["weight"])


def test_effective_labels_prefer_known_labels_and_keep_order() -> None:
    rows = [
        {"problem_id": "p1", "skill_id": "arith", "labeler": "family", "version": "family_v1"},
        {"problem_id": "p1", "skill_id": "order", "labeler": "family", "version": "family_v1"},
        {"problem_id": "p1", "skill_id": "logic", "labeler": "qwen", "version": "skills_teacher_v1"},
        {"problem_id": "p2", "skill_id": "logic", "labeler": "qwen", "version": "skills_teacher_v1"},
        {"problem_id": "p2", "skill_id": "arith", "labeler": "qwen", "version": "skills_teacher_v1"},
    ]
    table = to_table(rows, PROBLEM_SKILLS)
    assert effective_labels(table) == {"p1": ["arith", "order"], "p2": ["logic", "arith"]}
    assert label_agreement(table) == {"problems": 1, "main_included": 0.0, "main_first": 0.0, "any_overlap": 0.0}


def test_choose_failures_spreads_over_problems_and_is_seeded() -> None:
    failed = [{"problem_id": p, "sample_index": i} for p in ("a", "b", "c") for i in range(3)] + [
        {"problem_id": "d", "sample_index": 0}
    ]
    chosen = choose_failures(failed, 5, seed=1)
    assert len(chosen) == 5 and {r["problem_id"] for r in chosen[:4]} == {"a", "b", "c", "d"}
    assert chosen == choose_failures(list(reversed(failed)), 5, seed=1)
    assert len(choose_failures(failed, 50, seed=1)) == len(failed)


def test_balance_flags_a_dominating_skill_with_weights() -> None:
    skills = {"p1": "arith", "p2": "arith", "p3": "logic", "p4": "seq"}
    ok = balance_of(["p1", "p3", "p4"], None, skills, max_share=0.5)
    assert ok.passed and ok.shares == {"arith": 0.333333, "logic": 0.333333, "seq": 0.333333}
    heavy = balance_of(["p1", "p2", "p3", "p4"], [1.0, 1.0, 1.0, 0.5], skills, max_share=0.5)
    assert not heavy.passed and heavy.shares["arith"] == pytest.approx(2 / 3.5, abs=1e-6)
    assert "'arith' holds 57%" in heavy.message
    assert balance_of([], None, skills, 0.5).passed


def test_stat_syn_novelty_rejects_copies_of_references() -> None:
    recorded = [json.loads(line) for line in RECORDED.read_text().splitlines()]
    (row,) = [r for r in recorded if r["kind"] == "stat_syn"]
    references = dict(enumerate(row["context"]["references"]))
    questions, _ = parse_questions(row["completion"], 2)
    assert [copy_reason(q, {}, references) for q in questions] == [
        "copied out of reference problem 0",
        "copied out of reference problem 1",
    ]
    assert copy_reason("12^3 mod 5", {}, references) == "copied out of reference problem 0"
    assert copy_reason("What is 7^5 mod 9?", {"what is 7^5 mod 9?": "p9"}, references) == "copy of pool problem p9"
    assert copy_reason("What is 7^5 mod 11?", {"what is 7^5 mod 9?": "p9"}, references) == ""


def test_skills_config_checks_label_bounds() -> None:
    with pytest.raises(ValueError, match="labels_per_problem"):
        SkillsConfig(labels_per_problem=(3, 2))


# -- end to end on the real 0.5B model ---------------------------------------------------------------------------

WEAKEST_QUERY = """
select p.skill_id, s.name, p.n_problems, round(p.pass_rate, 3) as pass_rate, p.n_failures, p.n_fail_attributed,
       round(p.fail_share, 3) as fail_share, round(p.fail_share_lo, 3) as fail_share_lo,
       round(p.fail_share_hi, 3) as fail_share_hi, round(p.weight, 3) as stat_sel_weight
from skill_profile p join skills s using (skill_id)
where p.student_id = ?
order by p.fail_share desc, p.pass_rate asc nulls last, p.skill_id
limit 5
"""


def _config(tmp_path: Path, shared_dir: Path) -> ProjectConfig:
    return project_config(
        tmp_path,
        student="skills-e2e",
        sources=SourcesConfig(
            procedural=[
                ProceduralSource(family="arithmetic", levels=[2], per_level=1, seed=2),
                ProceduralSource(family="knights_knaves", levels=[1], per_level=1, seed=2),
            ],
            imports=[ImportSource(path=str(shared_dir / "data" / "gsm8k" / "train.jsonl"), preset="gsm8k", limit=1)],
        ),
        # Answer-only rollouts keep the e2e cheap on a shared CPU; the 160-token cap still bounds a rambling one.
        rollouts=RolloutConfig(k=4, max_tokens=160, prompt="answer_only_v1", seed=0),
        skills=SkillsConfig(
            enabled=True,
            propose_from=1,
            propose_max_tokens=128,
            label_known=True,
            failures_attributed=3,
            syn_skills=1,
            syn_per_skill=1,
            syn_max_tokens=128,
        ),
        synthesis=SynthesisConfig(answers=AnswerCheckConfig(k=3, max_tokens=128)),
    )


@pytest.mark.timeout(1800)  # a few minutes on an idle 2-core machine; other model processes on the cores slow it ×5
def test_skills_end_to_end_on_the_real_model(
    small_engine: Engine, roles: MakeRoles, tmp_path: Path, shared_dir: Path
) -> None:
    config = _config(tmp_path, shared_dir)
    root = DataRoot(tmp_path)
    build_problems(config, root)
    build_rollouts(config, root, small_engine, progress=False)
    build_difficulty(config, root)
    with roles(config, root) as engine_roles:
        first = _run_skill_stages(config, root, engine_roles)
    vocabulary, labels, profile, syn = first

    skills = root.read_table("skills").to_pylist()
    sources = {s["skill_id"]: s["source"] for s in skills}
    assert {k for k, v in sources.items() if v == "family"} == {
        "arithmetic",
        "order_of_operations",
        "logic",
        "case_analysis",
    }
    assert vocabulary.counts["family"] == 4 and vocabulary.counts["unlabeled_problems"] == 1
    assert set(sources.values()) <= {"family", "teacher"}
    assert vocabulary.figures.get("model_calls", 0) + vocabulary.figures.get("cache_hits", 0) == 1  # one proposal

    table = root.read_table("problem_skills").to_pylist()
    by_labeler = {(r["problem_id"], r["labeler"]) for r in table}
    assert sum(lb == "family" for _, lb in by_labeler) == 2
    assert labels.counts["teacher_requested"] == 3  # 2 family problems (label_known) + the GSM8K one
    assert all(r["skill_id"] in sources for r in table)
    assert all(r["version"] == ("family_v1" if r["labeler"] == "family" else "skills_teacher_v1") for r in table)
    assert all(r["labeler"] == SMALL_MODEL for r in table if r["labeler"] != "family")
    rejects = root.read_table("rejects", {"origin": "skills"}).to_pylist()
    assert all(r["stage"] == "skills_label" and r["reason"] for r in rejects)
    rejected_problems = {r["input_ref"].split("#")[0] for r in rejects}
    assert labels.counts["teacher_accepted"] + len(rejected_problems) >= labels.counts["teacher_requested"]
    assert "agreement_problems" in labels.figures

    part = {"student": config.student.id}
    rows = root.read_table("skill_profile", part).to_pylist()
    grades = current_grades(config, root).to_pylist()
    assert rows and {r["skill_id"] for r in rows} <= set(sources)
    failures = sum(g["n"] - g["k"] for g in grades)
    assert profile.counts["failed_rollouts"] == failures
    assert profile.counts["failures_chosen"] == min(3, failures)
    for row in rows:
        assert row["student_id"] == config.student.id and 0 <= row["fail_share"] <= 1
        assert row["n_problems"] == 0 or 0 <= row["pass_lo"] <= row["pass_rate"] <= row["pass_hi"] <= 1
    attributed = root.read_table("skill_attributions", part).to_pylist()
    assert sum(r["n_fail_attributed"] for r in rows) == len(attributed)
    own = effective_labels(root.read_table("problem_skills"))  # attribute_from: problem (the default)
    assert all(r["skill_id"] in own.get(r["problem_id"], sources) for r in attributed)  # unlabeled: any skill

    views = refresh_catalog(root)
    assert {"skills", "problem_skills", "skill_profile"} <= set(views)
    with duckdb.connect(str(root.catalog_path), read_only=True) as con:
        weakest = con.execute(WEAKEST_QUERY, [config.student.id]).fetchall()
    assert 1 <= len(weakest) <= 5 and all(name for _, name, *_ in weakest)

    weights = problem_skill_weights(root, config.student.id)
    mains = main_skill(root)
    assert set(weights) <= set(mains) and all(w >= 0 for w in weights.values())
    assert mains[next(g["problem_id"] for g in grades if g["family"] == "knights_knaves")] == "logic"
    plan = plan_curriculum(
        root.read_table("problems"), current_grades(config, root), student_id="skills-e2e", categories=mains,
        weights=weights,
    )  # fmt: skip
    assert set(plan.ordered.column("category").to_pylist()) <= set(sources) | {"gsm8k"}

    log = root.read_all_partitions("synthesis_log").to_pylist()
    assert syn.counts["skills_targeted"] <= 1 and all(r["method"] == "stat_syn" for r in log)
    assert all(r["reason"] for r in log if not r["kept"])
    for problem in syn.table.to_pylist():
        meta = json.loads(problem["metadata"])
        assert problem["source"] == "stat_syn" and meta["target_skill"] in sources and meta["seed_problem_ids"]
        assert json.loads(problem["checks_passed"]) == ["agreement"] and meta["consistency_score"] >= 2 / 3

    calls = small_engine.stats.model_calls
    with roles(config, root) as engine_roles:
        again = _run_skill_stages(config, root, engine_roles)
    assert small_engine.stats.model_calls == calls, "a rerun is served from the cache"
    for before, after in zip(first, again, strict=True):
        assert before.table.equals(after.table)


def _run_skill_stages(config: ProjectConfig, root: DataRoot, roles: EngineRoles) -> list:
    return [
        build_skill_vocabulary(config, root, roles, progress=False),
        build_problem_skills(config, root, roles, progress=False),
        build_skill_profile(config, root, roles, progress=False),
        build_stat_syn(config, root, roles, progress=False),
    ]


def test_skill_balance_flags_a_curriculum_one_skill_dominates(tmp_path: Path) -> None:
    root = DataRoot(tmp_path)
    labels = [("p1", "arithmetic"), ("p2", "arithmetic"), ("p3", "arithmetic"), ("p4", "logic")]
    rows = [{"problem_id": p, "skill_id": s, "labeler": "family", "version": "family_v1"} for p, s in labels]
    root.write_table("problem_skills", to_table(rows, PROBLEM_SKILLS))
    curriculum = pa.table({"student_id": ["s", "s", "s", "s", "t"], "problem_id": ["p1", "p2", "p3", "p4", "p4"]})
    dominated = skill_balance(root, "s", curriculum, max_share=0.5)
    assert not dominated.passed and dominated.shares == {"arithmetic": 0.75, "logic": 0.25}
    assert skill_balance(root, "t", curriculum, max_share=0.5).shares == {"logic": 1.0}  # only t's rows
    shard = pa.table({"problem_id": ["p1", "p4", "p5"], "family": ["arithmetic", "knights_knaves", "sequences"]})
    balanced = skill_balance(root, None, shard, max_share=0.5)
    assert balanced.passed and set(balanced.shares) == {"arithmetic", "logic", "family:sequences"}
