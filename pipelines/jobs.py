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

JOBS = [build_all, regrade]
