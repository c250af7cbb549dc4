"""Stages after the curriculum: trainer exports (verl / TRL / HF datasets) and the trainer run.

Each reads the configured strategy's shards through `CurriculumReader` (sha256-checked, in order) and writes
under the data root: `exports/<student>/<strategy>/<format>/` and `runs/<student>/<run id>/`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from scoring.config import ProjectConfig
from scoring.curriculum.shards import MANIFEST, CurriculumReader
from scoring.grading.difficulty import grade_rollouts
from scoring.schemas import ROLLOUT_KEY, ROLLOUTS, TRAINING_CONSUMPTION, TRAINING_EVAL, TRAINING_STEPS, to_table
from scoring.stages.curriculum import curriculum_dir
from scoring.stages.difficulty import register_revisions
from scoring.stages.problems import load_pool
from scoring.stages.report import StageSummary, markdown_table
from scoring.storage import DataRoot
from scoring.training.evaluation import heldout_problems
from scoring.training.exports import export
from scoring.training.grpo import METHOD as TRAIN_METHOD
from scoring.training.grpo import TrainingRun, train_on_curriculum

HELDOUT_COLUMNS = ["step", "split", "n", "correct", "accuracy", "tokens"]


def exports_dir(config: ProjectConfig, root: DataRoot) -> Path:
    """Where the current curriculum's trainer exports go: `<root>/exports/<student>/<strategy>`."""
    return root.path / "exports" / config.student.id / config.curriculum.strategy_id


def build_exports(config: ProjectConfig, root: DataRoot) -> StageSummary:
    """Write the current curriculum in every configured trainer format, in curriculum order."""
    shard_dir = curriculum_dir(config, root)
    out_dir = exports_dir(config, root)
    rows = len(CurriculumReader(shard_dir))
    if rows == 0:
        # nothing to train on; the trainers' readers cannot load an empty dataset, so write nothing
        empty = pa.table({"format": pa.array([], pa.string())})
        return StageSummary(empty, {"rows": 0}, {"note": "empty curriculum: nothing exported"}, path=out_dir)
    results = export(shard_dir, out_dir, config.exports.formats, prompt=config.rollouts.prompt)
    table = pa.table(
        {
            "format": list(results),
            "path": [str(r.path) for r in results.values()],
            "files": [len(r.files) for r in results.values()],
            "rows": [r.rows for r in results.values()],
        }
    )
    return StageSummary(table, {"rows": rows, "formats": len(results)}, path=out_dir)


# --- the trainer ----------------------------------------------------------------------------------------------------


def training_student_id(config: ProjectConfig) -> str:
    """The student whose evidence training rollouts are: the policy being trained, one revision per run."""
    return f"{config.student.id}-train"


def training_run_id(config: ProjectConfig, manifest_sha256: str) -> str:
    """Content address of a training run: the trainer config and the exact curriculum it consumes."""
    trainer = config.trainer.model_dump(exclude={"enabled"})
    payload = json.dumps({"trainer": trainer, "curriculum": manifest_sha256}, sort_keys=True)
    return f"{TRAIN_METHOD}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def training_evidence(run: TrainingRun, student_id: str, run_id: str, config: ProjectConfig) -> pa.Table:
    """Training rollouts as `rollouts` rows of the training student (revision = run id): each problem's samples
    numbered in the order they were drawn, so repeated epochs never collide."""
    # what a sample depends on, as grading's sampling hash (the run id already tells the policies apart)
    knobs = config.trainer.model_dump(
        include={"model", "temperature", "top_p", "max_completion_tokens", "prompt", "seed"}
    )
    sampling = f"train-{hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:16]}"
    drawn: Counter[str] = Counter()
    rows = []
    for row in sorted(run.rollouts.to_pylist(), key=lambda r: (r["step"], r["position"], r["sample_index"])):
        index = drawn[row["problem_id"]]
        drawn[row["problem_id"]] += 1
        rows.append(
            {
                "problem_id": row["problem_id"],
                "student_id": student_id,
                "student_revision": run_id,
                "sampling_hash": sampling,
                "sample_index": index,
                "completion": row["completion"],
                "extracted_answer": row["extracted_answer"],
                "verdict": row["verdict"],
                "verdict_reason": row["verdict_reason"],
                "verifier_version": row["verifier_version"],
                "verifier_rule": row["verifier_rule"],
                "completion_tokens": row["completion_tokens"],
                "finish_reason": f"train_step_{row['step']}",
            }
        )
    return to_table(rows, ROLLOUTS)


def build_trainer(config: ProjectConfig, root: DataRoot, *, progress: bool = True) -> StageSummary:
    """Train on the current curriculum in order (GRPO + LoRA, `scoring/training/grpo.py`) and write back what happened:
    `training_steps` and `training_consumption` per run, and the training rollouts as evidence — `rollouts` and
    `difficulty` rows of the student `<id>-train`, revision = run id. A run is addressed by its config and the
    curriculum's manifest, so a rerun with both unchanged reuses the stored run instead of training again."""
    if not config.trainer.enabled:
        return StageSummary(to_table([], TRAINING_STEPS), {"steps": 0}, {"note": "trainer.enabled is false"})
    shard_dir = curriculum_dir(config, root)
    reader = CurriculumReader(shard_dir)
    if len(reader) < config.trainer.batch_size:
        empty = to_table([], TRAINING_STEPS)
        note = f"curriculum has {len(reader)} problem(s), fewer than one batch of {config.trainer.batch_size}"
        return StageSummary(empty, {"steps": 0}, {"note": note})
    manifest_sha = hashlib.sha256((shard_dir / MANIFEST).read_bytes()).hexdigest()
    run_id = training_run_id(config, manifest_sha)
    part = {"student": config.student.id, "run": run_id}
    out_dir = root.path / "runs" / config.student.id / run_id
    if (out_dir / "adapter" / "run.json").is_file() and root.has_rows("training_steps", part):
        return _reused_run(root, part, run_id, out_dir)
    # held-out problems are drawn against the whole pool, so the policy never trained on one (issue 23, item 1)
    heldout = heldout_problems(load_pool(root), config.trainer.heldout) if config.trainer.heldout.enabled else None
    run = train_on_curriculum(
        shard_dir,
        config.trainer,
        root.models_dir,
        out_dir,
        progress=progress,
        problems=root.read_table("problems"),
        heldout=heldout,
    )
    tag = {"student_id": config.student.id, "run_id": run_id}
    evals = [tag | e for e in run.evaluations]
    steps = pa.Table.from_pylist([tag | r for r in run.steps.to_pylist()], schema=TRAINING_STEPS)
    consumption = pa.Table.from_pylist([tag | r for r in run.consumption.to_pylist()], schema=TRAINING_CONSUMPTION)
    # evidence first, the run's own tables last: their presence marks the run complete for a rerun
    _store_evidence(config, root, run, run_id)
    root.write_table("training_consumption", consumption, part)
    root.write_table("training_eval", to_table(evals, TRAINING_EVAL), part)
    path = root.write_table("training_steps", steps, part)
    correct = sum(r["correct"] for r in run.rollouts.to_pylist())
    counts = {"steps": steps.num_rows, "consumed": consumption.num_rows, "rollouts": run.rollouts.num_rows}
    counts |= {"correct": correct, "unconsumed": len(run.unconsumed)}
    figures = {
        "run_id": run_id,
        "seconds": run.seconds,
        "load_seconds": run.load_seconds,
        "adapter": str(run.adapter_dir),
    }
    figures |= _accuracy_figures(evals)
    return StageSummary(steps, counts, figures, path, markdown={"heldout": markdown_table(evals, HELDOUT_COLUMNS)})


def _store_evidence(config: ProjectConfig, root: DataRoot, run: TrainingRun, run_id: str) -> None:
    """The run's rollouts as `rollouts` of the training student, graded into its `difficulty` partition."""
    student = training_student_id(config)
    evidence_part = {"student": student}
    root.upsert_table("rollouts", training_evidence(run, student, run_id, config), ROLLOUT_KEY, evidence_part)
    graded = grade_rollouts(root.read_table("rollouts", evidence_part), bands=config.grading.bands)
    root.write_table("difficulty", graded, evidence_part)
    register_revisions(root, graded, config.trainer.model, evidence_part)


def _reused_run(root: DataRoot, part: dict[str, str], run_id: str, out_dir: Path) -> StageSummary:
    """The summary of a run already stored complete (same trainer config and curriculum): nothing is trained."""
    steps = root.read_table("training_steps", part)
    evals = root.read_table("training_eval", part).to_pylist()
    markdown = {"heldout": markdown_table(evals, HELDOUT_COLUMNS)}
    return StageSummary(steps, {"steps": steps.num_rows, "reused": 1}, {"run_id": run_id}, out_dir, markdown=markdown)


def _accuracy_figures(evals: list[dict[str, Any]]) -> dict[str, float]:
    """Each evaluated split's accuracy at the first and the last evaluated step."""
    figures: dict[str, float] = {}
    for split in ("heldout", "hard"):
        mine = sorted((e for e in evals if e["split"] == split), key=lambda e: e["step"])
        if mine:
            figures |= {f"{split}_accuracy_start": mine[0]["accuracy"], f"{split}_accuracy_end": mine[-1]["accuracy"]}
    return figures
