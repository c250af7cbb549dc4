"""The curriculum ablation (issue 23): does training on Gradus-chosen problems teach faster than random order?

    python bench/curriculum_ablation.py [--config bench/curriculum_ablation.yaml] [--arms random sec] [--seeds 0 1]
                                        [--out bench/results/curriculum_ablation.md]

Grades the config's pool on its student (Dagster assets problems → duplicates → contamination → rollouts →
difficulty, cached), then materializes every missing `ablation_run` partition (arm, seed) of the `curriculum_ablation`
job on a persistent Dagster instance under the data root, seed by seed so that an interrupted comparison is balanced,
and finally the `ablation_report` asset. Rerunning the command resumes: finished runs are not trained again.
Prints the per-arm table and writes it, with the plot, to `--out` (and `.svg` beside it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "curriculum_ablation.yaml")
    parser.add_argument("--arms", nargs="*", help="a subset of the config's arms")
    parser.add_argument("--seeds", nargs="*", type=int, help="a subset of the config's seeds")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "curriculum_ablation.md")
    args = parser.parse_args()

    from scoring.config import load_config, resolve_data_root

    config_path = args.config.resolve()
    config = load_config(config_path)
    home = resolve_data_root(config).path / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    os.environ.setdefault("DAGSTER_HOME", str(home.resolve()))
    arms = args.arms or list(config.ablation.arms)
    seeds = args.seeds if args.seeds is not None else list(config.ablation.seeds)
    import dagster as dg

    from pipelines.ablation import run_ablation

    run_ablation(config_path, arms, seeds, instance=dg.DagsterInstance.get())
    report(config_path, args.out)


def report(config_path: Path, out: Path) -> None:
    """Print the `ablation_report` table and write it (and the plot) next to `out`."""
    from scoring.config import load_config, resolve_data_root
    from scoring.stages.ablation import build_ablation_report
    from scoring.training.ablation_report import REPORT_COLUMNS

    config = load_config(config_path)
    summary = build_ablation_report(config, resolve_data_root(config))
    table = summary.markdown["ablation"]
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot = out.with_suffix(".svg")
    if summary.path is not None:
        shutil.copyfile(summary.path, plot)
    trainer = config.ablation.trainer
    lines = [
        "# Curriculum ablation",
        "",
        f"Command: `python bench/curriculum_ablation.py --config {config_path.name}`. Student `{trainer.model}`, "
        f"{trainer.steps} GRPO steps of {trainer.batch_size} problems x {trainer.num_generations} samples x "
        f"{trainer.max_completion_tokens} tokens, learning rate {trainer.learning_rate}; held-out accuracy is "
        "greedy, on problems drawn fresh from the pool's families and knobs (`heldout`) and one knob up (`hard`).",
        "",
        f"Grading rollouts charged to arms that use grades: {summary.figures['grading_rollouts']}.",
        "",
        table,
        "",
        f"![held-out accuracy against steps]({plot.name})",
        "",
        "Columns: " + ", ".join(REPORT_COLUMNS) + ".",
    ]
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
