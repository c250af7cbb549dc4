"""The curriculum ablation: one student, one start and one step budget, trained on each arm (issue 23).

An arm is a way of choosing what the student trains on:

- `random`: a seeded uniform order over the whole graded pool, problems without learning signal included (the
  control: what a user gets by shuffling the dataset).
- `easy_to_hard`, `hard_to_easy` (a negative control), `balanced_band` (ODF's band, methods §5): Gradus's offline
  strategies over the graded pool (`scoring.curriculum.strategies`), signal-free problems excluded.
- `gain_rl` (methods §16): the student's own angle concentration, highest first (`gain_rl` strategy) over the
  whole graded pool like `random` (it needs no grades, only one prefill pass per problem, which is not a rollout).
- `sec` (methods §2) and `dump` (methods §3): online bandits over the pool's categories (`family:knob`), fed each
  step's advantages (`scoring.training.online`). They need no grading.

A run is (arm, seed): the seed draws the LoRA init and the samples (the same for every arm at one seed), the random
order and the bandits' draws. Every arm trains `steps` optimizer steps (a static order shorter than the budget is
repeated, each pass in the same order) and is evaluated on the same held-out split (`scoring.training.evaluation`).

Fair accounting (issue 23, item 5): arms that chose their problems from Gradus's grades are charged the grading
rollouts of the pool; `total_rollouts` adds the training rollouts so far.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engines.errors import ConfigError
from scoring.curriculum.samplers import SAMPLERS
from scoring.curriculum.shards import write_shards
from scoring.curriculum.strategies import CurriculumConfig, plan_curriculum
from scoring.training.evaluation import HARD, HELDOUT, HeldoutConfig, HeldoutSplit
from scoring.training.grpo import TrainerConfig, TrainingRun, train_on_curriculum, train_online
from scoring.training.online import AdclConfig, OnlineSchedule, RegradingSchedule
from synthesis.registry import Registry

ABLATION_METHOD = "curriculum_ablation_v1"


@dataclass(frozen=True, slots=True)
class Arm:
    """How an arm picks problems: an offline strategy over the graded pool, or an online sampler."""

    kind: Literal["static", "online", "regrading"]
    uses_grades: bool  # charged the pool's grading rollouts
    description: str


# The arms by name; `<name>_<version>` tells runs of a changed arm apart.
ARMS: Registry[Arm] = Registry("ablation arm")
for _name, _arm in {
    "random": Arm("static", False, "seeded uniform order over the whole graded pool, signal-free problems included"),
    "easy_to_hard": Arm("static", True, "Gradus posterior mean, easiest first"),
    "hard_to_easy": Arm("static", True, "Gradus posterior mean, hardest first (negative control)"),
    "balanced_band": Arm("static", True, "Gradus posterior mean inside the band, closest to 0.5 first (ODF)"),
    "sec": Arm("online", False, "SEC bandit over family:knob categories, fed |advantage| each step"),
    "dump": Arm("online", False, "DUMP UCB bandit over family:knob categories, fed |advantage| each step"),
    "gain_rl": Arm("static", False, "GAIN-RL: the student's angle concentration, highest first, whole pool"),
    "adcl": Arm("regrading", True, "ADCL: re-grade a sample with the current policy each chunk, train the learnable"),
}.items():
    ARMS.add(_name, _arm, description=_arm.description)

SMALL_STUDENT = "smollm2-135m-instruct-q4_1"


def _default_trainer() -> TrainerConfig:
    # SmolLM2-135M: ~3.5 s per step at 4 problems x 4 samples x 16 tokens on 2 cores (issue 23).
    return TrainerConfig(
        enabled=True,
        model=SMALL_STUDENT,
        steps=40,
        batch_size=4,
        num_generations=4,
        max_completion_tokens=16,
        learning_rate=2e-4,
        prompt="answer_only_v1",
        heldout=HeldoutConfig(every=5),
    )


class AblationConfig(BaseModel):
    """Which arms and seeds to compare and how each run trains (`ablation` in gradus.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arms: tuple[str, ...] = Field(tuple(ARMS.names()), description="arms to compare (`ARMS`)")
    seeds: tuple[int, ...] = Field((0, 1, 2, 3, 4), description="one run per arm and seed")
    trainer: TrainerConfig = Field(default_factory=_default_trainer, description="the run's student and budget")
    band: tuple[float, float] = Field((0.25, 0.75), description="balanced_band: posterior-mean band kept")
    adcl: AdclConfig = Field(default_factory=lambda: AdclConfig(), description="the adcl arm's re-grading")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(ARMS.check(arm) for arm in value)


def grading_charge(difficulty: pa.Table) -> int:
    """Rollouts spent grading the pool (the `n` of its difficulty rows): the price of choosing by grades."""
    return int(sum(difficulty.column("n").to_pylist())) if difficulty.num_rows else 0


def run_arm(
    arm: str,
    seed: int,
    pool: pa.Table,
    difficulty: pa.Table,
    heldout: HeldoutSplit,
    config: AblationConfig,
    models_dir: Path,
    out_dir: Path,
    *,
    progress: bool = False,
    signals: dict[str, float] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train one (arm, seed) run; returns its `ablation_runs` rows (one per step, step 0 = before training) and its
    held-out evaluations (`TRAINER_EVAL` rows). `signals` (problem id → angle score) is what `gain_rl` orders by."""
    spec = ARMS.get(arm)
    trainer = config.trainer.model_copy(update={"seed": seed})
    regrading: dict[int, int] = {}
    if spec.kind == "online":
        run = _train_online_arm(arm, seed, pool, trainer, models_dir, out_dir, heldout, progress)
    elif spec.kind == "regrading":
        run, regrading = _train_regrading_arm(seed, pool, difficulty, config, trainer, models_dir, out_dir, heldout)
    else:
        if arm == "gain_rl" and signals is None:
            raise ConfigError("arm 'gain_rl' needs the pool's angle scores (`signals`)")
        run = _train_static_arm(
            arm, seed, pool, difficulty, config, trainer, models_dir, out_dir, heldout, progress, signals
        )
    charge = grading_charge(difficulty) if spec.uses_grades else 0
    return step_rows(arm, seed, run, charge, regrading), list(run.evaluations)


def _train_static_arm(
    arm: str,
    seed: int,
    pool: pa.Table,
    difficulty: pa.Table,
    config: AblationConfig,
    trainer: TrainerConfig,
    models_dir: Path,
    out_dir: Path,
    heldout: HeldoutSplit,
    progress: bool,
    signals: dict[str, float] | None = None,
) -> TrainingRun:
    """Write the arm's curriculum as shards and train on it in order, repeated until the step budget is spent."""
    curriculum = CurriculumConfig(strategy=arm, seed=seed, band=config.band, shard_size=64)
    plan = plan_curriculum(pool, difficulty, student_id="ablation", config=curriculum, signals=signals)
    size = plan.ordered.num_rows
    if size < trainer.batch_size:
        raise ConfigError(
            f"arm {arm!r} keeps {size} problem(s), fewer than one batch of {trainer.batch_size}: grade a larger pool"
        )
    shard_dir = out_dir / "shards"
    write_shards(plan, shard_dir, config=curriculum, student_id="ablation", provenance={"arm": arm})
    epochs = math.ceil(trainer.steps / (size // trainer.batch_size))
    trainer = trainer.model_copy(update={"epochs": epochs})
    return train_on_curriculum(
        shard_dir, trainer, models_dir, out_dir, progress=progress, problems=pool, heldout=heldout
    )


def _train_online_arm(
    arm: str,
    seed: int,
    pool: pa.Table,
    trainer: TrainerConfig,
    models_dir: Path,
    out_dir: Path,
    heldout: HeldoutSplit,
    progress: bool,
) -> TrainingRun:
    rows = [{**row, "position": i} for i, row in enumerate(pool.to_pylist())]
    categories: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        categories[f"{row['family'] or row['source']}:{row['difficulty_knob']}"].append(row["problem_id"])
    sampler_class = SAMPLERS.get(arm)
    schedule = OnlineSchedule(sampler_class(categories, seed=seed), trainer.num_generations)
    return train_online(rows, schedule, trainer, models_dir, out_dir, progress=progress, problems=pool, heldout=heldout)


def _train_regrading_arm(
    seed: int,
    pool: pa.Table,
    difficulty: pa.Table,
    config: AblationConfig,
    trainer: TrainerConfig,
    models_dir: Path,
    out_dir: Path,
    heldout: HeldoutSplit,
) -> tuple[TrainingRun, dict[int, int]]:
    """ADCL over every graded problem (signal-free ones too: their grades may be stale), starting from Gradus's
    easy→hard order; returns the run and the re-grading rollouts spent before each step."""
    post_mean = {r["problem_id"]: r["post_mean"] for r in difficulty.select(["problem_id", "post_mean"]).to_pylist()}
    rows = [{**row, "position": i} for i, row in enumerate(pool.to_pylist()) if row["problem_id"] in post_mean]
    order = [r["problem_id"] for r in sorted(rows, key=lambda r: (-post_mean[r["problem_id"]], r["problem_id"]))]
    adcl = config.adcl
    schedule = RegradingSchedule(
        order, chunk_steps=adcl.chunk_steps, sample_size=adcl.sample_size, samples=adcl.samples, seed=seed
    )
    run = train_online(rows, schedule, trainer, models_dir, out_dir, progress=False, problems=pool, heldout=heldout)
    return run, {entry["step"]: entry["rollouts"] for entry in schedule.history}


def step_rows(
    arm: str, seed: int, run: TrainingRun, grading_rollouts: int, regrading: dict[int, int] | None = None
) -> list[dict[str, Any]]:
    """Per step: reward, the GRPO groups with zero reward variance (no learning signal), rollouts spent (training
    so far, grading charged — the pool's grading plus any re-grading before that step, `regrading` — and total),
    held-out accuracy where it was measured, and wall seconds so far (model load and training steps; the held-out
    evaluations are measurement, not training, and are left out)."""
    groups: dict[int, dict[tuple[str, int], list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in run.rollouts.to_pylist():
        groups[r["step"]][(r["problem_id"], r["position"])].append(r["reward"])
    evaluations: dict[int, dict[str, float]] = defaultdict(dict)
    for e in run.evaluations:
        evaluations[e["step"]][e["split"]] = e["accuracy"]
    steps = {r["step"]: r for r in run.steps.to_pylist()}
    rows, trained, elapsed = [], 0, run.load_seconds
    for step in range(0, max(steps, default=0) + 1):
        info = steps.get(step, {})
        step_groups = list(groups.get(step, {}).values())
        flat = sum(1 for g in step_groups if len(set(g)) == 1)
        trained += int(info.get("rollouts", 0))
        grading_rollouts += (regrading or {}).get(step, 0)
        elapsed += float(info.get("seconds", 0.0))
        rows.append(
            {
                "method": ABLATION_METHOD,
                "arm": arm,
                "seed": seed,
                "step": step,
                "reward_mean": info.get("reward_mean"),
                "groups": len(step_groups),
                "zero_variance_groups": flat,
                "training_rollouts": trained,
                "grading_rollouts": grading_rollouts,
                "total_rollouts": trained + grading_rollouts,
                "heldout_accuracy": evaluations.get(step, {}).get(HELDOUT),
                "hard_accuracy": evaluations.get(step, {}).get(HARD),
                "seconds": round(elapsed, 3),
            }
        )
    return rows
