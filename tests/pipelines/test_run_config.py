"""Per-run knobs (`dg.Config`) override gradus.yaml for one run, and a bad value names the field and range."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from assets import problems, rollouts
from assets.run_config import ProblemsRun, RolloutsRun
from engines.errors import ConfigError
from pipelines.materialize import materialize_project
from pipelines.resources import build_resources
from scoring.storage import DataRoot
from tests.conftest import write_project


def _config(tmp_path: Path) -> Path:
    procedural = [
        {"family": "arithmetic", "levels": [1, 2], "per_level": 3, "seed": 0},
        {"family": "fractions", "levels": [1], "per_level": 3, "seed": 0},
    ]
    return write_project(tmp_path, tmp_path / "root", sources={"procedural": procedural})


def test_problems_run_config_narrows_families_and_counts(tmp_path: Path) -> None:
    resources = build_resources(_config(tmp_path))
    assert dg.materialize([problems], resources=resources).success
    assert DataRoot(tmp_path / "root").read_table("problems").num_rows == 9
    run_config = dg.RunConfig({"problems": ProblemsRun(families=["arithmetic"], per_level=1)})
    result = dg.materialize([problems], resources=resources, run_config=run_config)
    table = DataRoot(tmp_path / "root").read_table("problems")
    assert set(table.column("family").to_pylist()) == {"arithmetic"} and table.num_rows == 2
    assert result.asset_materializations_for_node("problems")[0].metadata["dagster/row_count"].value == 2


@pytest.mark.parametrize(
    ("asset", "run_config", "message"),
    [
        (
            problems,
            {"problems": ProblemsRun(families=["geometry"])},
            r"^run config: families \['geometry'\] are not configured; configured: \['arithmetic', 'fractions'\]$",
        ),
        (
            problems,
            {"problems": ProblemsRun(per_level=-1)},
            r"^run config: sources\.procedural\.0\.per_level: Input should be greater than or equal to 0 \(got -1\)",
        ),
        (
            rollouts,
            {"rollouts": RolloutsRun(k=5000)},
            r"^run config: rollouts\.k: Input should be less than or equal to 1024 \(got 5000\)$",
        ),
    ],
)
def test_bad_run_config_names_the_field(tmp_path: Path, asset, run_config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        materialize_project(_config(tmp_path), selection=[asset], run_config=dg.RunConfig(run_config))
