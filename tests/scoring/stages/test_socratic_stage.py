"""Socratic-Zero rounds end to end on the real 0.5B CPU model (student = teacher): round 1 refines the seeds'
failures, round 2 reads round 1's accepted problems and their stored grading rollouts, each round writes its own
partitions, and a rerun of both makes no model call and rewrites identical tables."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engines import Engine
from scoring.config import ProjectConfig
from scoring.grading.rollouts import RolloutConfig
from scoring.schemas import to_table
from scoring.stages.problems import build_problems
from scoring.stages.report import student_partition
from scoring.stages.socratic import build_socratic_round
from scoring.stages.synthesis_log import synth_partition
from scoring.storage import DataRoot
from scoring.synthesis_schemas import SYNTHESIS_LOG
from synthesis.config import AnswerCheckConfig, SynthesisConfig
from synthesis.socratic import SocraticConfig
from synthesis.sources import ProceduralSource, SourcesConfig
from tests.scoring.stages.conftest import MakeRoles, project_config

STAGES = {"input", "select", "refine", "agreement", "band"}


def socratic_project(tmp_path: Path, **socratic: object) -> ProjectConfig:
    """Six two-number sums as seeds and answer-only rollouts of at most 16 tokens: the 0.5B either boxes its answer
    at once or explains and is cut off (unparseable, a failure), so failures are cheap to draw and the teacher's
    refinements stay easy enough for the 0.5B to agree on. Six failures refined per round: the 0.5B parses and
    agrees on only some of its own refinements (1 in 3 with batched decoding's texts), and round 2 needs at least one.
    One agreement solution, and a keep rule that keeps every graded problem so that round 2 has inputs."""
    return project_config(
        tmp_path,
        student="socratic",
        n_ctx=1024,
        sources=SourcesConfig(procedural=[ProceduralSource(family="arithmetic", levels=[1], per_level=6, seed=1)]),
        rollouts=RolloutConfig(k=4, max_tokens=16, prompt="answer_only_v1", seed=0),
        synthesis=SynthesisConfig(
            answers=AnswerCheckConfig(k=1, min_votes=1, max_tokens=96),
            socratic=SocraticConfig(
                enabled=True, seeds=6, failures_per_round=6, k=4, min_utility=0.0, refine_max_tokens=128, **socratic
            ),
        ),
    )


def _tables(root: DataRoot, config: ProjectConfig) -> dict[str, pa.Table]:
    tables = {"rollouts": root.read_table("rollouts", student_partition(config))}
    for r in (1, 2):
        tables[f"log{r}"] = root.read_table("synthesis_log", synth_partition("socratic", r))
        tables[f"problems{r}"] = root.read_table("synthesized_problems", synth_partition("socratic", r))
    return tables


@pytest.mark.slow
@pytest.mark.timeout(1800)  # model-bound: 600 s is too tight when other runs share the 2 cores
def test_two_rounds_read_each_other_and_rerun_for_free(small_engine: Engine, roles: MakeRoles, tmp_path: Path) -> None:
    config = socratic_project(tmp_path)
    root = DataRoot(tmp_path)
    build_problems(config, root)
    engine_roles = roles(config, root)

    first = build_socratic_round(config, root, engine_roles, 1, progress=False)
    funnel = first.markdown["funnel"]
    assert first.counts["inputs"] == 6 and first.counts["replayed"] == 0
    assert first.counts["failures"] >= 3, funnel
    assert first.counts["picked"] == min(6, first.counts["failures"])
    assert first.counts["picked"] >= first.counts["parsed"] >= first.counts["agreed"] >= first.counts["graded"]
    assert first.counts["kept"] == first.counts["graded"] >= 1, funnel  # min_utility 0 keeps every graded one
    log1 = root.read_table("synthesis_log", synth_partition("socratic", 1)).to_pylist()
    assert {r["stage"] for r in log1} <= STAGES and {"input", "select", "refine"} <= {r["stage"] for r in log1}
    assert all(r["reason"] for r in log1 if not r["kept"]), "every rejection says why"
    seeds = {r["item_id"] for r in log1 if r["stage"] == "input"}
    for row in log1:
        if row["stage"] == "band":
            detail = json.loads(row["detail"])
            assert detail["zone"] in {"mastered", "learning", "too_difficult"}
            assert 0.0 <= detail["s"] <= 1.0 and 0.0 < detail["utility"] <= 1.0
            assert detail["replay"] is False and isinstance(detail["failed_sample_index"], int)

    accepted = first.table.to_pylist()
    stored = root.read_table("rollouts", student_partition(config))
    for problem in accepted:
        meta = json.loads(problem["metadata"])
        assert problem["source"] == problem["family"] == "socratic" and problem["parent_id"] in seeds
        assert json.loads(problem["checks_passed"]) == ["agreement", "band"]
        assert meta["round"] == 1 and meta["is_seed"] is False and meta["refiner"] == "teacher"
        assert meta["zone"] in {"mastered", "learning", "too_difficult"} and "failed_solution" in meta
        own = stored.filter(pc.equal(stored.column("problem_id"), problem["problem_id"]))
        assert own.num_rows == 4, "the grading rollouts are stored for round 2"

    calls = small_engine.stats.model_calls
    second = build_socratic_round(config, root, engine_roles, 2, progress=False)
    assert second.counts["inputs"] == first.counts["kept"] + 2  # round 1's problems + 25% of the 6 seeds
    assert second.counts["replayed"] == 2
    log2 = root.read_table("synthesis_log", synth_partition("socratic", 2)).to_pylist()
    inputs2 = {r["item_id"]: json.loads(r["detail"]) for r in log2 if r["stage"] == "input"}
    assert {p["problem_id"] for p in accepted} == {k for k, d in inputs2.items() if d["origin"] == "round 1"}
    assert {k for k, d in inputs2.items() if d["replay"]} <= seeds
    fresh_ids = {p["problem_id"] for p in accepted}
    assert all(d["n"] == 4 for k, d in inputs2.items() if k in fresh_ids), "round 2 read the stored rollouts"
    for problem in second.table.to_pylist():
        assert problem["parent_id"] in set(inputs2) and json.loads(problem["metadata"])["round"] == 2
    round2_calls = small_engine.stats.model_calls - calls
    # Round 2 has failures to refine (its inputs' stored rollouts include failed ones) and asks the teacher to
    # refine them: no escape for a round that picks nothing or calls no model.
    assert second.counts["failures"] >= 1 and second.counts["picked"] >= 1, second.markdown["funnel"]
    assert round2_calls > 0

    before = _tables(root, config)
    calls = small_engine.stats.model_calls
    again1 = build_socratic_round(config, root, engine_roles, 1, progress=False)
    again2 = build_socratic_round(config, root, engine_roles, 2, progress=False)
    assert small_engine.stats.model_calls == calls, "a rerun is served from stored tables and the cache"
    assert again1.figures["model_calls"] == again2.figures["model_calls"] == 0
    assert again1.counts == first.counts and again2.counts == second.counts
    after = _tables(root, config)
    for name, table in before.items():
        assert after[name].equals(table), f"{name} changed on rerun"


def test_a_round_without_its_previous_round_is_empty_not_a_crash(
    small_engine: Engine, roles: MakeRoles, tmp_path: Path
) -> None:
    config = socratic_project(tmp_path)
    root = DataRoot(tmp_path)
    calls = small_engine.stats.model_calls
    empty_pool = build_socratic_round(config, root, roles(config, root), 1, progress=False)
    assert empty_pool.table.num_rows == 0 and "no seed problems" in str(empty_pool.figures["status"])
    missing = build_socratic_round(config, root, roles(config, root), 3, progress=False)
    assert missing.table.num_rows == 0 and missing.counts["kept"] == 0
    assert missing.figures["status"] == "round 2 has not been run; run it before round 3"
    assert not root.has_rows("synthesis_log", synth_partition("socratic", 3)), "round 3 did not run"
    # An empty previous round: round 3 ran (its log holds its inputs) and accepted nothing.
    ran = {"method": "socratic", "round": 3, "stage": "input", "item_id": "p1", "kept": True, "reason": ""}
    root.write_table("synthesis_log", to_table([ran], SYNTHESIS_LOG), synth_partition("socratic", 3))
    nothing = build_socratic_round(config, root, roles(config, root), 4, progress=False)
    assert nothing.figures["status"] == "round 3 accepted no problems, so round 4 has nothing to refine"
    assert small_engine.stats.model_calls == calls
