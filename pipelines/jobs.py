"""Jobs for the common paths."""

from __future__ import annotations

import dagster as dg

build_all = dg.define_asset_job(
    "build_all",
    selection=dg.AssetSelection.all(),
    description="Problems → rollouts on the student → difficulty → curriculum shards, end to end.",
    tags={"gradus/job": "build_all"},
)

regrade = dg.define_asset_job(
    "regrade",
    selection=dg.AssetSelection.assets(
        "rollouts", "difficulty", "band_filter", "predictor", "irt", "curriculum_shards", "trainer_exports"
    ),
    description="Re-grade the existing pool for the configured student and rebuild its curriculum.",
)

export = dg.define_asset_job(
    "export",
    selection=dg.AssetSelection.assets("curriculum_shards", "trainer_exports"),
    description="Rebuild the student's curriculum from its current grades and export it for verl, TRL and HF.",
)

JOBS = [build_all, regrade, export]
