"""The curriculum ablation as a Dagster job (issue 23, item 3): one partition per (arm, seed) on a real instance,
rows per step in `ablation_runs`, and a rerun that trains only the missing partitions."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from pipelines.ablation import missing_runs, run_ablation
from scoring.config import load_config, resolve_data_root
from scoring.stages.ablation import run_partition
from tests.conftest import write_project


def _config(tmp_path: Path) -> Path:
    return write_project(
        tmp_path,
        tmp_path / "root",
        student={"id": "smol", "engine": {"model": "smollm2-135m-instruct-q4_1", "n_ctx": 256, "parallel": 4}},
        sources={"procedural": [{"family": "elementary", "levels": [1, 2], "per_level": 3, "seed": 5}]},
        rollouts={"k": 2, "max_tokens": 6, "prompt": "answer_only_v1"},
        decontamination={"benchmarks": []},
        ablation={
            "arms": ["random", "sec"],
            "seeds": [0],
            "trainer": {
                "model": "smollm2-135m-instruct-q4_1",
                "steps": 1,
                "batch_size": 2,
                "num_generations": 2,
                "max_completion_tokens": 6,
                "heldout": {"per_knob": 1, "hard_per_family": 1},
            },
        },
    )


@pytest.mark.slow
def test_each_arm_and_seed_is_a_partition_and_a_rerun_trains_only_the_missing_ones(tmp_path: Path) -> None:
    path = _config(tmp_path)
    with dg.instance_for_test() as instance:
        first = run_ablation(path, ["random"], [0], instance=instance, log=lambda _: None)
        assert [str(k) for k in first] == ["random|0"]
        assert [str(k) for k in missing_runs(instance, ["random", "sec"], [0])] == ["sec|0"]
        second = run_ablation(path, ["random", "sec"], [0], instance=instance, log=lambda _: None)
        assert [str(k) for k in second] == ["sec|0"], "the finished run is not trained again"
        assert missing_runs(instance, ["random", "sec"], [0]) == []

        config = load_config(path)
        root = resolve_data_root(config)
        for arm in ("random", "sec"):
            rows = root.read_table("ablation_runs", run_partition(config, arm, 0)).to_pylist()
            assert [r["step"] for r in rows] == [0, 1] and {r["arm"] for r in rows} == {arm}
            assert rows[0]["heldout_accuracy"] is not None and rows[1]["heldout_accuracy"] is not None
            assert rows[1]["training_rollouts"] == 4 and rows[1]["grading_rollouts"] == 0  # neither uses grades
            evals = root.read_table("training_eval", run_partition(config, arm, 0)).to_pylist()
            assert {(e["step"], e["split"]) for e in evals} == {
                (0, "heldout"),
                (1, "heldout"),
                (0, "hard"),
                (1, "hard"),
            }
        report = instance.get_latest_materialization_event(dg.AssetKey("ablation_report"))
        assert report is not None
        metadata = report.asset_materialization.metadata
        assert metadata["runs"].value == 2 and "random" in metadata["ablation"].value
        assert Path(metadata["plot"].value).read_text().lstrip().startswith("<?xml")
