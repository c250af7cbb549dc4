"""The curriculum ablation as stages: one (arm, seed) training run per partition, and the report over all of them.

`build_ablation_run` trains the configured student on one arm with one seed (`scoring.training.ablation`) over the
graded pool and writes its `ablation_runs` rows (partition `student=<id>/run=<arm>-seed<seed>`), plus the held-out
evaluations to `training_eval`. Each run is its own partition, so an interrupted comparison resumes by running the
missing partitions only. `build_ablation_report` aggregates whatever runs exist (`scoring.training.ablation_report`).
"""

from __future__ import annotations

import pyarrow as pa

from scoring.config import ProjectConfig
from scoring.schemas import ABLATION_RUNS, PROBLEMS, TRAINING_EVAL, to_table
from scoring.stages.angles import cached_angle_signals
from scoring.stages.difficulty import current_grades
from scoring.stages.problems import load_pool
from scoring.stages.report import StageSummary, markdown_table
from scoring.storage import DataRoot
from scoring.training.ablation import ABLATION_METHOD, grading_charge, run_arm
from scoring.training.ablation_report import REPORT_COLUMNS, accuracy_plot_svg, summarize_runs
from scoring.training.evaluation import HeldoutSplit, heldout_problems


def run_partition(config: ProjectConfig, arm: str, seed: int) -> dict[str, str]:
    """The `ablation_runs` partition of one run (keys must not repeat a column, hence `run`)."""
    return {"student": config.student.id, "run": f"{arm}-seed{seed}"}


def ablation_inputs(config: ProjectConfig, root: DataRoot) -> tuple[pa.Table, pa.Table, HeldoutSplit]:
    """The graded pool (problems with a difficulty row for the configured student), its grades, and the held-out
    split drawn against the whole pool (so no arm, not even `random`, ever trains on a held-out problem)."""
    pool = load_pool(root)
    grades = current_grades(config, root)
    graded = set(grades.column("problem_id").to_pylist())
    pool_table = to_table([_row(p) for p in pool if p.problem_id in graded], PROBLEMS)
    heldout = heldout_problems(pool, config.ablation.trainer.heldout)
    return pool_table, grades, heldout


def build_ablation_run(
    config: ProjectConfig, root: DataRoot, arm: str, seed: int, *, progress: bool = False
) -> StageSummary:
    """Train one (arm, seed) run and store its per-step rows and held-out evaluations."""
    pool, grades, heldout = ablation_inputs(config, root)
    if pool.num_rows == 0:
        raise ValueError(f"no graded problems for student {config.student.id!r}: materialize `difficulty` first")
    out_dir = root.path / "ablation" / config.student.id / f"{arm}-seed{seed}"
    signals = None
    if arm == "gain_rl":  # the ablation student's angle signal over the pool, computed once and cached
        trainer = config.ablation.trainer
        pairs = zip(pool.column("problem_id").to_pylist(), pool.column("question").to_pylist(), strict=True)
        signals = cached_angle_signals(root, list(pairs), model=trainer.model, prompt=trainer.prompt).scores
    rows, evaluations = run_arm(
        arm, seed, pool, grades, heldout, config.ablation, root.models_dir, out_dir, progress=progress, signals=signals
    )
    table = to_table(rows, ABLATION_RUNS)
    partition = run_partition(config, arm, seed)
    run_id = f"{ABLATION_METHOD}-{arm}-seed{seed}"
    evals = [{"student_id": config.student.id, "run_id": run_id, **e} for e in evaluations]
    # the evaluations first: a run is complete (and skipped on resume) once its ablation_runs partition exists
    root.write_table("training_eval", to_table(evals, TRAINING_EVAL), partition)
    root.write_table("ablation_runs", table, partition)
    last = rows[-1]
    return StageSummary(
        table,
        {"steps": last["step"], "training_rollouts": last["training_rollouts"], "heldout_problems": heldout.size},
        {
            "grading_rollouts_charged": last["grading_rollouts"],
            "heldout_accuracy_start": rows[0]["heldout_accuracy"] or 0.0,
            "heldout_accuracy_end": last["heldout_accuracy"] or 0.0,
            "seconds": last["seconds"],
        },
        markdown={"evaluations": markdown_table(evals, ["step", "split", "n", "correct", "accuracy", "tokens"])},
    )


def build_ablation_report(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Aggregate every stored run of the configured student: the per-arm table and the accuracy plot."""
    runs = root.read_all_partitions("ablation_runs").to_pylist()
    mine = [r for r in runs if r["arm"] in config.ablation.arms and r["seed"] in config.ablation.seeds]
    summary = summarize_runs(mine, reference_arm="random")
    out_dir = root.path / "ablation" / config.student.id
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = out_dir / "heldout_accuracy.svg"
    plot.write_text(accuracy_plot_svg(mine))
    table = pa.Table.from_pylist(summary) if summary else pa.table({"arm": pa.array([], pa.string())})
    return StageSummary(
        table,
        {"runs": len({(r["arm"], r["seed"]) for r in mine}), "arms": len(summary)},
        {"grading_rollouts": grading_charge(current_grades(config, root))},
        path=plot,
        markdown={"ablation": markdown_table(summary, REPORT_COLUMNS)},
    )


def _row(problem: object) -> dict[str, object]:
    return {name: getattr(problem, name) for name in PROBLEMS.names}
