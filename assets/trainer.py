"""Asset `trainer`: GRPO + LoRA on the curriculum shards, consumed in order, with the training rollouts written
back as evidence (difficulty rows of the student `<id>-train`, one revision per run)."""

import dagster as dg

from assets.metadata import counts_metadata, preview_markdown
from assets.partitions import STUDENTS
from assets.resources import CatalogResource, DataRootResource, ProjectResource, StudentEngineResource, run_settings
from scoring.stages.picture_report import key_plot_markdown
from scoring.stages.training import build_trainer


@dg.asset(
    group_name="trainer",
    partitions_def=STUDENTS,
    kinds={"python", "pytorch"},
    deps=["curriculum_shards"],
    description="Trains the student (TRL GRPO + LoRA on CPU by default) on the shards in curriculum order.",
)
def trainer(
    context: dg.AssetExecutionContext,
    project: ProjectResource,
    data_root: DataRootResource,
    student: StudentEngineResource,
    catalog: CatalogResource,
) -> dg.MaterializeResult:
    root, config = run_settings(project, student, data_root, context)
    summary = build_trainer(config, root)
    catalog.refresh()
    metadata = {**counts_metadata(summary.counts), **counts_metadata(summary.figures)}
    if summary.markdown.get("heldout"):
        # accuracy on problems the policy never trained on, before (step 0), during and after training
        metadata["heldout_accuracy"] = dg.MetadataValue.md(summary.markdown["heldout"])
    run_id = summary.figures.get("run_id")
    if run_id:
        consumption = root.read_table("training_consumption", {"student": config.student.id, "run": str(run_id)})
        order = consumption.column("position").to_pylist()
        context.log.info(f"training run {run_id} consumed curriculum positions in this order: {order}")
        metadata["consumption_order"] = dg.MetadataValue.text(", ".join(map(str, order)))
        columns = ["step", "loss", "reward_mean", "correct", "rollouts", "seconds"]
        metadata["steps"] = dg.MetadataValue.md(preview_markdown(summary.table, columns, rows=50))
        metadata["duckdb_query"] = dg.MetadataValue.md(
            "```sql\nselect step, loss, reward_mean, correct from training_steps "
            f"where run_id = '{run_id}' order by step\n```"
        )
    if run_id:
        metadata["key_plot"] = dg.MetadataValue.md(key_plot_markdown(config, root, "training"))
    return dg.MaterializeResult(metadata=metadata)
