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
from scoring.schemas import (
    ADCL_REESTIMATES,
    ROLLOUT_KEY,
    ROLLOUTS,
    TRAINING_CONSUMPTION,
    TRAINING_EVAL,
    TRAINING_STEPS,
    to_table,
)
from scoring.stages.curriculum import curriculum_dir
from scoring.stages.difficulty import register_revisions
from scoring.stages.problems import load_pool
from scoring.stages.report import StageSummary, markdown_table
from scoring.storage import DataRoot
from scoring.training.evaluation import HeldoutSplit, heldout_problems
from scoring.training.exports import export
from scoring.training.grpo import METHOD as TRAIN_METHOD
from scoring.training.grpo import TrainerConfig, TrainingRun, train_on_curriculum, train_online
from scoring.training.online import RegradingSchedule

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
    # `adcl` joins the address only when set, so runs stored before it existed keep their ids
    trainer = config.trainer.model_dump(exclude={"enabled"} | ({"adcl"} if config.trainer.adcl is None else set()))
    payload = json.dumps({"trainer": trainer, "curriculum": manifest_sha256}, sort_keys=True)
    return f"{TRAIN_METHOD}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _sampling_hash(prefix: str, config: ProjectConfig) -> str:
    """What a sample depends on, as grading's sampling hash (the run id already tells the policies apart)."""
    knobs = config.trainer.model_dump(
        include={"model", "temperature", "top_p", "max_completion_tokens", "prompt", "seed"}
    )
    return f"{prefix}-{hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:16]}"


def training_evidence(run: TrainingRun, student_id: str, run_id: str, config: ProjectConfig) -> pa.Table:
    """Training rollouts as `rollouts` rows of the training student (revision = run id): each problem's samples
    numbered in the order they were drawn, so repeated epochs never collide. `finish_reason` = `train_step_<s>`."""
    ordered = sorted(run.rollouts.to_pylist(), key=lambda r: (r["step"], r["position"], r["sample_index"]))
    return _evidence_rows(ordered, student_id, run_id, _sampling_hash("train", config), "train_step")


def regrade_evidence(run: TrainingRun, student_id: str, run_id: str, config: ProjectConfig) -> pa.Table:
    """ADCL's re-grading answers (methods §12) as `rollouts` rows of the training student (revision = run id), under
    their own sampling hash (`regrade-…`: decoded by `generate`, not by the GRPO step) and `finish_reason` =
    `regrade_step_<s>`, the step before which the live policy answered. A problem re-graded at several steps keeps
    every answer, numbered in step order."""
    ordered = sorted(run.regrades.to_pylist(), key=lambda r: (r["step"], r["problem_id"], r["sample_index"]))
    return _evidence_rows(ordered, student_id, run_id, _sampling_hash("regrade", config), "regrade_step")


def _evidence_rows(
    ordered: list[dict[str, Any]], student_id: str, run_id: str, sampling: str, step_tag: str
) -> pa.Table:
    drawn: Counter[str] = Counter()
    rows = []
    for row in ordered:
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
                "finish_reason": f"{step_tag}_{row['step']}",
            }
        )
    return to_table(rows, ROLLOUTS)


def adcl_reestimates(run: TrainingRun, curriculum: list[dict[str, Any]], student_id: str, run_id: str) -> pa.Table:
    """The run's ADCL re-estimates with each problem's difficulty before training (`difficulty` of its curriculum
    row, 1 - posterior mean) and as re-estimated (1 - pass rate of the live policy)."""
    initial = {r["problem_id"]: r["difficulty"] for r in curriculum}
    rows = [
        {
            "student_id": student_id,
            "run_id": run_id,
            **r,
            "initial_difficulty": initial.get(r["problem_id"]),
            "reestimated_difficulty": round(1.0 - r["pass_rate"], 12),
        }
        for r in run.reestimates.to_pylist()
    ]
    return to_table(rows, ADCL_REESTIMATES)


def build_trainer(config: ProjectConfig, root: DataRoot, *, progress: bool = True) -> StageSummary:
    """Train on the current curriculum in order (GRPO + LoRA, `scoring/training/grpo.py`) and write back what happened:
    `training_steps` and `training_consumption` per run, and the training rollouts as evidence — `rollouts` and
    `difficulty` rows of the student `<id>-train`, revision = run id. With `trainer.adcl` set, the curriculum's
    order is only the start: ADCL re-grades a draw of it with the live policy every `chunk_steps` steps and trains
    on what is learnable now (methods §12); its answers join the evidence and its re-estimates go to
    `adcl_reestimates`. A run is addressed by its config and the curriculum's manifest, so a rerun with both
    unchanged reuses the stored run instead of training again; a run killed before its `training_steps` were
    written trains again and its evidence, keyed like grading's, is not added twice."""
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
    problems = root.read_table("problems")
    curriculum = list(reader.rows()) if config.trainer.adcl is not None else []
    if config.trainer.adcl is not None:
        run = _train_adcl(curriculum, config.trainer, root, out_dir, problems, heldout, progress)
    else:
        run = train_on_curriculum(
            shard_dir, config.trainer, root.models_dir, out_dir, progress=progress, problems=problems, heldout=heldout
        )
    tag = {"student_id": config.student.id, "run_id": run_id}
    evals = [tag | e for e in run.evaluations]
    steps = pa.Table.from_pylist([tag | r for r in run.steps.to_pylist()], schema=TRAINING_STEPS)
    consumption = pa.Table.from_pylist([tag | r for r in run.consumption.to_pylist()], schema=TRAINING_CONSUMPTION)
    # evidence first, the run's own tables last: their presence marks the run complete for a rerun
    store_training_evidence(config, root, run, run_id)
    if config.trainer.adcl is not None:
        reestimates = adcl_reestimates(run, curriculum, config.student.id, run_id)
        root.write_table("adcl_reestimates", reestimates, part)
    root.write_table("training_consumption", consumption, part)
    root.write_table("training_eval", to_table(evals, TRAINING_EVAL), part)
    path = root.write_table("training_steps", steps, part)
    correct = sum(r["correct"] for r in run.rollouts.to_pylist())
    counts = {"steps": steps.num_rows, "consumed": consumption.num_rows, "rollouts": run.rollouts.num_rows}
    counts |= {"correct": correct, "unconsumed": len(run.unconsumed), "regrade_rollouts": run.regrades.num_rows}
    figures = {
        "run_id": run_id,
        "seconds": run.seconds,
        "load_seconds": run.load_seconds,
        "adapter": str(run.adapter_dir),
    }
    figures |= _accuracy_figures(evals)
    return StageSummary(steps, counts, figures, path, markdown={"heldout": markdown_table(evals, HELDOUT_COLUMNS)})


def _train_adcl(
    curriculum: list[dict[str, Any]],
    trainer: TrainerConfig,
    root: DataRoot,
    out_dir: Path,
    problems: pa.Table,
    heldout: HeldoutSplit | None,
    progress: bool,
) -> TrainingRun:
    """ADCL over the curriculum (methods §12): its manifest order is the initial easy→hard order re-graded from."""
    adcl = trainer.adcl
    if adcl is None:
        raise ValueError("ADCL training needs trainer.adcl")
    schedule = RegradingSchedule(
        [r["problem_id"] for r in curriculum],
        chunk_steps=adcl.chunk_steps,
        sample_size=adcl.sample_size,
        samples=adcl.samples,
        seed=trainer.seed,
    )
    return train_online(
        curriculum, schedule, trainer, root.models_dir, out_dir, progress=progress, problems=problems, heldout=heldout
    )


def store_training_evidence(config: ProjectConfig, root: DataRoot, run: TrainingRun, run_id: str) -> None:
    """The run's rollouts (and ADCL's re-grading answers) as `rollouts` of the training student, graded into its
    `difficulty` partition. Keyed like grading's rollouts, so storing a run again adds nothing."""
    student = training_student_id(config)
    evidence_part = {"student": student}
    evidence = pa.concat_tables(
        [training_evidence(run, student, run_id, config), regrade_evidence(run, student, run_id, config)]
    )
    root.upsert_table("rollouts", evidence, ROLLOUT_KEY, evidence_part)
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
