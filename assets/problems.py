"""Asset `problems`: the pool from procedural families and dataset imports."""

import dagster as dg

from assets.metadata import counts_metadata, table_metadata
from assets.resources import DataRootResource, ProjectResource
from assets.run_config import ProblemsRun
from scoring.stages.problems import build_problems


@dg.asset(
    group_name="sources",
    kinds={"python", "parquet"},
    deps=["scalequest_problems", "glan_problems"],
    description="Problems from the configured procedural families and dataset imports, plus every accepted "
    "synthesized problem (ScaleQuest, GLAN, Socratic-Zero, restructuring, STAT-Syn); id = content hash.",
)
def problems(config: ProblemsRun, project: ProjectResource, data_root: DataRootResource) -> dg.MaterializeResult:
    summary = build_problems(config.apply(project.load()), data_root.root())
    by_family: dict[str, int] = {}
    for family in summary.table.column("family").to_pylist():
        by_family[family] = by_family.get(family, 0) + 1
    family_md = "| family | problems |\n|---|---|\n" + "\n".join(f"| {f} | {n} |" for f, n in sorted(by_family.items()))
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                summary.table,
                columns=["problem_id", "family", "difficulty_knob", "question", "answer"],
                query="select family, difficulty_knob, count(*) from problems group by all order by all",
            ),
            **counts_metadata(summary.counts),
            "per_family": dg.MetadataValue.md(family_md),
            "path": dg.MetadataValue.path(str(summary.path)),
        }
    )
