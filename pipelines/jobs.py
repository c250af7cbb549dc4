"""Jobs for the common paths."""

from __future__ import annotations

import dagster as dg

# Socratic rounds have their own partitions (one per round), so they run in their own job.
ROUND_PARTITIONED = ("socratic_problems",)
# Methods that learn from the student's grades: their problems are graded by the next build.
FROM_GRADES = ("restructured_problems", "stat_syn_problems")

# The curriculum ablation: many training runs, partitioned by (arm, seed); never part of a build.
ABLATION = ("ablation_run", "ablation_report")

build_all = dg.define_asset_job(
    "build_all",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*ROUND_PARTITIONED, *ABLATION),
    description="Sources (with ScaleQuest and GLAN when on) → problems → rollouts on the student → difficulty → "
    "skills → curriculum shards → exports → trainer, end to end.",
    tags={"gradus/job": "build_all"},
)

synthesize_more = dg.define_asset_job(
    "synthesize_more",
    selection=dg.AssetSelection.assets(*FROM_GRADES),
    description="New problems from this student's grades: CLPO/GHPO variants of what it fails and STAT-Syn "
    "problems for its missing skills. A sensor then launches build_all for the student, which grades them.",
    tags={"gradus/job": "synthesize_more"},
)

socratic = dg.define_asset_job(
    "socratic",
    selection=dg.AssetSelection.assets(*ROUND_PARTITIONED),
    description="One Socratic-Zero round per partition (add partitions 1, 2, … in order; round r reads r-1).",
    tags={"gradus/job": "socratic"},
)

regrade = dg.define_asset_job(
    "regrade",
    selection=dg.AssetSelection.assets(
        "rollouts", "difficulty", "band_filter", "predictor", "irt", "curriculum_shards", "trainer_exports", "report"
    ),
    description="Re-grade the existing pool for the configured student and rebuild its curriculum.",
)

export = dg.define_asset_job(
    "export",
    selection=dg.AssetSelection.assets("curriculum_shards", "trainer_exports"),
    description="Rebuild the student's curriculum from its current grades and export it for verl, TRL and HF.",
)

# Named apart from its one asset: Dagster refuses a job and an op of the same name.
supervision_data = dg.define_asset_job(
    "supervision_data",
    selection=dg.AssetSelection.assets("supervision"),
    description="SFT traces and preference pairs for the student from its current grades (methods §14): traces, "
    "policy selections, pairs and their TRL / verl / HF exports (set supervision.enabled: true).",
    tags={"gradus/job": "supervision_data"},
)

curriculum_ablation = dg.define_asset_job(
    "curriculum_ablation",
    selection=dg.AssetSelection.assets("ablation_run"),
    description="One curriculum-ablation run per (arm, seed) partition: the configured student trained on that arm "
    "for the same step budget (materialize the missing partitions to resume an interrupted comparison).",
    tags={"gradus/job": "curriculum_ablation"},
)

ablation_summary = dg.define_asset_job(
    "ablation_summary",
    selection=dg.AssetSelection.assets("ablation_report"),
    description="Aggregate every stored ablation run: per-arm table and held-out accuracy plot.",
    tags={"gradus/job": "ablation_summary"},
)

JOBS = [build_all, regrade, export, synthesize_more, socratic, supervision_data, curriculum_ablation, ablation_summary]
