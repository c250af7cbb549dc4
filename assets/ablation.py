"""The curriculum ablation (issue 23): `ablation_run`, one partition per (arm, seed), trains the configured student
on that arm for the configured step budget; `ablation_report` aggregates every stored run into the per-arm table
and the held-out accuracy plot. A comparison interrupted halfway resumes by materializing the missing partitions
(`bench/curriculum_ablation.py` does exactly that)."""

import dagster as dg

from assets.metadata import counts_metadata
from assets.resources import DataRootResource, ProjectResource, StudentEngineResource, run_settings
from scoring.stages.ablation import build_ablation_report, build_ablation_run
from scoring.training.ablation import ARMS

MAX_SEEDS = 10
ABLATION_PARTITIONS = dg.MultiPartitionsDefinition(
    {
        "arm": dg.StaticPartitionsDefinition(ARMS.names()),
        "seed": dg.StaticPartitionsDefinition([str(s) for s in range(MAX_SEEDS)]),
    }
)
_RUNS_QUERY = (
    "select arm, step, avg(heldout_accuracy) as accuracy, count(*) as seeds from ablation_runs "
    "where heldout_accuracy is not null group by all order by arm, step"
)


def ablation_partition_key(arm: str, seed: int) -> dg.MultiPartitionKey:
    """The `ablation_run` partition of one (arm, seed) run."""
    return dg.MultiPartitionKey({"arm": arm, "seed": str(seed)})


@dg.asset(
    group_name="ablation",
    partitions_def=ABLATION_PARTITIONS,
    kinds={"python", "pytorch"},
    deps=[dg.AssetDep("difficulty", partition_mapping=dg.AllPartitionMapping())],
    description="One curriculum-ablation run: the configured student trained on one arm with one seed for the "
    "`ablation.trainer.steps` budget, held-out accuracy measured along the way (issue 23).",
)
def ablation_run(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
) -> dg.MaterializeResult:
    # The partition is (arm, seed), not a student: the configured student is the one trained.
    root, config = run_settings(project, student, data_root)
    key = context.partition_key.keys_by_dimension
    summary = build_ablation_run(config, root, key["arm"], int(key["seed"]))
    metadata = {"dagster/row_count": dg.MetadataValue.int(summary.table.num_rows)}
    metadata |= counts_metadata(summary.counts) | counts_metadata(summary.figures)
    metadata["held_out_accuracy"] = dg.MetadataValue.md(summary.markdown["evaluations"])
    metadata["duckdb_query"] = dg.MetadataValue.md(f"```sql\n{_RUNS_QUERY}\n```")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="ablation",
    kinds={"python", "svg"},
    deps=[dg.AssetDep(ablation_run, partition_mapping=dg.AllPartitionMapping())],
    description="Per arm: held-out accuracy at the start, midway and at the end (mean and 95% interval over "
    "seeds), steps and rollouts to reach the random arm's final accuracy, zero-variance share and wall time.",
)
def ablation_report(
    project: ProjectResource, data_root: DataRootResource, student: StudentEngineResource
) -> dg.MaterializeResult:
    root, config = run_settings(project, student, data_root)
    summary = build_ablation_report(config, root)
    metadata = {"dagster/row_count": dg.MetadataValue.int(summary.table.num_rows)}
    metadata |= counts_metadata(summary.counts) | counts_metadata(summary.figures)
    metadata["ablation"] = dg.MetadataValue.md(summary.markdown["ablation"])
    if summary.path is not None:
        metadata["plot"] = dg.MetadataValue.path(str(summary.path))
    metadata["duckdb_query"] = dg.MetadataValue.md(f"```sql\n{_RUNS_QUERY}\n```")
    return dg.MaterializeResult(metadata=metadata)
