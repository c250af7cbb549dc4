"""Adaptive grading end to end on the real 0.5B CPU model: rounds are stored as they finish, a rerun costs no
model call, and the grades say how and why each problem stopped."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from engines import Engine
from scoring.grading.adaptive import AdaptiveConfig
from scoring.grading.policy import GradingConfig
from scoring.grading.rollouts import RolloutConfig
from scoring.stages.difficulty import build_difficulty
from scoring.stages.problems import build_problems
from scoring.stages.report import student_partition
from scoring.stages.rollouts import build_rollouts
from scoring.storage import DataRoot
from synthesis.sources import ProceduralSource, SourcesConfig
from tests.scoring.stages.conftest import project_config


def test_adaptive_rounds_store_evidence_and_rerun_for_free(small_engine: Engine, tmp_path: Path) -> None:
    config = project_config(
        tmp_path,
        student="adaptive",
        sources=SourcesConfig(procedural=[ProceduralSource(family="arithmetic", levels=[1, 3], per_level=2, seed=5)]),
        rollouts=RolloutConfig(max_tokens=24, prompt="answer_only_v1", seed=3),
        grading=GradingConfig(mode="adaptive", adaptive=AdaptiveConfig(min_k=2, max_k=5, round_size=1)),
    )
    root = DataRoot(tmp_path)
    build_problems(config, root)
    first = build_rollouts(config, root, small_engine, progress=False)
    stored = root.read_table("rollouts", student_partition(config))
    assert stored.num_rows == first.figures["rollouts_total"] > 0
    per_problem = pc.value_counts(stored.column("problem_id")).to_pylist()
    assert len(per_problem) == 4 and all(2 <= c["counts"] <= 5 for c in per_problem)
    assert first.figures["adaptive_rounds"] >= 1
    keys = set(zip(stored.column("problem_id").to_pylist(), stored.column("sample_index").to_pylist(), strict=True))
    assert len(keys) == stored.num_rows, "no sample is stored twice"

    calls_before = small_engine.stats.model_calls
    again = build_rollouts(config, root, small_engine, progress=False)
    assert small_engine.stats.model_calls == calls_before, "a rerun is served from stored evidence and the cache"
    assert again.figures["rollouts_total"] == stored.num_rows
    assert root.read_table("rollouts", student_partition(config)).num_rows == stored.num_rows

    graded = build_difficulty(config, root).table.to_pylist()
    assert {g["method"] for g in graded} == {"adaptive_v1"}
    for grade in graded:
        assert grade["stop_reason"] in {"band_certain", "max_k"}
        assert grade["stop_reason"] == "band_certain" or grade["n"] == 5
        assert grade["family"] == "arithmetic" and 0 <= grade["fresh_lo"] <= grade["fresh_hi"] <= 1
