"""CLPO/GHPO restructuring end to end on the real 0.5B CPU model: the pool is graded (problems → rollouts →
difficulty), hard/medium/always-failed problems get variants that keep their parent's id and answer, everything is
logged, and a rerun — after the variants joined the pool — makes no model call and rewrites identical tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines import Engine
from scoring.config import ProjectConfig
from scoring.grading.rollouts import RolloutConfig
from scoring.stages.difficulty import build_difficulty, current_grades
from scoring.stages.problems import build_problems, load_problems
from scoring.stages.restructure import build_restructure
from scoring.stages.rollouts import build_rollouts
from scoring.stages.synthesis_log import synth_partition
from scoring.storage import DataRoot
from synthesis.config import AnswerCheckConfig, SynthesisConfig
from synthesis.restructure import RestructureConfig, clpo_class, variant_kinds
from synthesis.sources import ProceduralSource, SourcesConfig
from tests.scoring.stages.conftest import MakeRoles, project_config

PART = synth_partition("restructure")


def restructure_project(tmp_path: Path) -> ProjectConfig:
    """The Socratic test's six sums and rollouts (so the session cache serves both) plus two knob-5 expressions the
    0.5B always fails in 16 tokens, whose family solutions ("(a * b - c) * d + e = …") feed GHPO hints; four parents
    per run."""
    return project_config(
        tmp_path,
        student="restructure",
        n_ctx=1024,
        sources=SourcesConfig(
            procedural=[
                ProceduralSource(family="arithmetic", levels=[1], per_level=6, seed=1),
                ProceduralSource(family="arithmetic", levels=[5], per_level=2, seed=1),
            ]
        ),
        rollouts=RolloutConfig(k=4, max_tokens=16, prompt="answer_only_v1", seed=0),
        synthesis=SynthesisConfig(
            answers=AnswerCheckConfig(k=1, min_votes=1, max_tokens=96),
            restructure=RestructureConfig(enabled=True, max_problems=4, seed=0),
        ),
    )


@pytest.mark.slow
@pytest.mark.timeout(1800)  # model-bound: 600 s is too tight when other runs share the 2 cores
def test_variants_keep_parent_and_answer_and_rerun_for_free(
    small_engine: Engine, roles: MakeRoles, tmp_path: Path
) -> None:
    config = restructure_project(tmp_path)
    root = DataRoot(tmp_path)
    build_problems(config, root)
    build_rollouts(config, root, small_engine, progress=False)
    build_difficulty(config, root)
    rates = {r["problem_id"]: r["pass_rate"] for r in current_grades(config, root).to_pylist()}
    assert len(rates) == 8
    engine_roles = roles(config, root)

    summary = build_restructure(config, root, engine_roles, progress=False)
    cfg = config.synthesis.restructure
    eligible = {pid for pid, p in rates.items() if variant_kinds(p, cfg)}
    assert summary.counts["candidates"] == len(eligible) >= 1, summary.markdown["funnel"]
    assert summary.counts["selected"] == min(4, len(eligible))
    log = root.read_table("synthesis_log", PART).to_pylist()
    selected = {r["item_id"] for r in log if r["stage"] == "select" and r["kept"]}
    assert len(selected) == summary.counts["selected"]
    assert all(r["reason"] for r in log if not r["kept"]), "every rejection says why"
    for row in log:
        if row["stage"] != "select":
            assert row["parent_id"] in selected

    parents = {p.problem_id: p for p in load_problems(root)}
    variants = summary.table.to_pylist()
    assert summary.counts["kept"] == len(variants)
    for variant in variants:
        parent = parents[variant["parent_id"]]
        meta = json.loads(variant["metadata"])
        assert variant["source"] == "restructure" and variant["family"] == f"restructure_{meta['kind']}"
        assert variant["answer"] == parent.answer, "a variant keeps its parent's gold answer"
        assert meta["kind"] in variant_kinds(rates[parent.problem_id], cfg)
        assert meta["clpo_class"] == clpo_class(rates[parent.problem_id], cfg)
        if meta["kind"].startswith("hint_"):
            assert variant["question"].startswith(parent.question)
            assert "beginning of a solution" in variant["question"]
        else:
            assert json.loads(variant["checks_passed"]) == ["agreement", "no_leak"]
    hinted_parents = {pid for pid in selected if rates[pid] == 0.0}
    for pid in hinted_parents:
        reference = [r for r in log if r["stage"] == "hint.reference" and r["item_id"] == pid]
        assert len(reference) == 1
        if reference[0]["kept"]:
            kinds = {json.loads(v["metadata"])["kind"] for v in variants if v["parent_id"] == pid}
            assert {"hint_25", "hint_50", "hint_75"} <= kinds

    # The variants join the pool; they are never parents again, so the rerun is the same run.
    build_problems(config, root)
    before = {t: root.read_table(t, PART) for t in ("synthesis_log", "synthesized_problems")}
    calls = small_engine.stats.model_calls
    again = build_restructure(config, root, engine_roles, progress=False)
    assert small_engine.stats.model_calls == calls and again.figures["model_calls"] == 0
    assert again.counts == summary.counts
    for table, stored in before.items():
        assert root.read_table(table, PART).equals(stored), f"{table} changed on rerun"
