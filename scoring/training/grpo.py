"""Trainer: GRPO with a LoRA adapter on CPU, consuming the curriculum shards in order (method `grpo_lora_v1`).

The student is loaded with `transformers` straight from its GGUF file (de-quantized to fp32) or from a local HF
model directory; TRL's `GRPOTrainer` samples `num_generations` completions per prompt with the same prompt text as
grading (`rollouts.PROMPTS`), rewards each with our verifier (1.0 correct, 0.0 otherwise) and updates a LoRA
adapter (peft). Every training rollout is recorded so it can be written back as evidence.

Order. The dataset is the `CurriculumReader` rows in manifest order. `GRPOConfig(shuffle_dataset=False)` makes
TRL's `RepeatSampler` walk indices 0, 1, 2, … (each repeated `num_generations` times), and with
`gradient_accumulation_steps=1`, `steps_per_generation=1`, `num_iterations=1` one optimizer step consumes exactly
the next `batch_size` problems. The sampler drops a last, incomplete batch, so a curriculum of N problems gives
`N // batch_size` steps per pass; the `N % batch_size` hardest problems are not trained on (logged as a warning).
Training stops after one pass (`epochs=1`) even when `steps` asks for more; `epochs > 1` repeats the same order.
The consumption table records what was actually consumed, from inside the reward function.

Determinism. Python, NumPy and torch are seeded (`transformers.set_seed`) before the LoRA weights are created,
and TRL/Trainer get the same seed. On CPU, with the same thread count, torch versions and input shards, a rerun
gives the same rollouts and losses; a different thread count (`torch.get_num_threads()`), CPU instruction set or
library version can change float reductions and hence sampled tokens. Wall-clock `seconds` are never reproducible.

Evidence. A rollout generated at step `s` comes from the policy after `s - 1` updates (step 1 is the base model:
LoRA's B matrices start at zero). Pass `problems` (the pool table) so every answer is checked
exactly as in grading. Without it, a registered family's scorer sees a problem rebuilt from the shard row, which
has no metadata (countdown's scorer then answers `error`), and other problems (reasoning-gym) are compared with
the gold answer; `verdict` and `verifier_rule` show which happened.
The verifier checks answers in spawned worker processes, so a calling script needs an `if __name__ == "__main__"`
guard.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engines.errors import ConfigError, did_you_mean
from engines.models import EMBEDDED_MODELS, is_model_path
from scoring.grading.rollouts import PROMPTS
from scoring.grading.verify import Verifier, VerifyConfig
from scoring.schemas import (
    TRAINER_CONSUMPTION,
    TRAINER_REESTIMATES,
    TRAINER_REGRADES,
    TRAINER_ROLLOUTS,
    TRAINER_STEPS,
    to_table,
)
from scoring.training.evaluation import HeldoutConfig, HeldoutEvaluator, HeldoutSplit, pass_rates, sample_policy_answers
from scoring.training.online import AdclConfig, OnlineSchedule, RegradingSchedule, online_grpo_trainer_class
from scoring.training.rewards import VerifiedReward, step_recorder
from scoring.training.student import as_problem, curriculum_dataset, dataset_record, load_student, save_adapter
from synthesis.problem import Problem

METHOD = "grpo_lora_v1"
# The embedded student cheap enough to train here: on 2 cores a GRPO step (2 prompts x 4 samples x 32 tokens) takes
# ~20-40 s with the 0.5B and ~115-150 s with the 1.5B (engines.models.DEFAULT_MODEL). Pass the graded student's
# model, prompt and token budget explicitly so training matches grading.
DEFAULT_TRAIN_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
LOG = logging.getLogger(__name__)


class TrainerConfig(BaseModel):
    """What to train and how. The defaults fit a 2-core CPU: ~20-40 s per step, 50 steps in about half an hour.
    `answer_only_v1` keeps completions within 32 tokens; `solve_boxed_v1` (grading's default) needs ~128 tokens
    and then costs ~2.5-6 minutes per step with the 0.5B model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="run the trainer stage (gradus.yaml turns it on; off when unset)")
    method: Literal["grpo"] = Field("grpo", description="training algorithm (GRPO with a LoRA adapter)")
    model: str = Field(
        DEFAULT_TRAIN_MODEL,
        description="an embedded model name (engines.models), a .gguf path or a local HF model directory",
    )
    steps: int = Field(50, ge=1, description="optimizer steps; capped at `epochs` passes over the curriculum")
    epochs: int = Field(1, ge=1, description="passes over the curriculum, each in curriculum order")
    batch_size: int = Field(2, ge=1, description="prompts (problems) per step")
    num_generations: int = Field(4, ge=2, description="sampled completions per prompt (GRPO's group size)")
    max_completion_tokens: int = Field(32, ge=1, description="tokens generated per completion at most")
    temperature: float = Field(0.8, gt=0.0, le=2.0, description="sampling temperature (as in grading)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling (as in grading)")
    learning_rate: float = Field(5e-5, gt=0.0, le=1.0, description="AdamW learning rate of the LoRA weights")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="dtype of the frozen base weights: fp32 (1.5B: ~6 GB) or bf16 (half of that, faster on CPUs "
        "with AVX512-BF16/AMX, slower on ones without); the LoRA adapter and its optimizer stay fp32",
    )
    activation_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory per step, ~20-30% more time"
    )
    seed: int = Field(0, ge=0, description="seeds Python, NumPy, torch, the LoRA init and sampling")
    prompt: str = Field("answer_only_v1", description="a rollouts.PROMPTS key: the same prompt text as grading")
    heldout: HeldoutConfig = Field(default_factory=HeldoutConfig, description="held-out accuracy during training")
    adcl: AdclConfig | None = Field(
        None,
        description="ADCL (methods §12): re-grade a draw of the curriculum with the live policy every chunk_steps "
        "steps and train on what it finds learnable; the re-estimates become evidence of the training student",
    )

    @field_validator("prompt")
    @classmethod
    def _known_prompt(cls, value: str) -> str:
        if value not in PROMPTS:
            raise ValueError(f"unknown prompt {value!r};{did_you_mean(value, PROMPTS)}")
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in EMBEDDED_MODELS and not is_model_path(value):
            raise ValueError(
                f"unknown model {value!r}: give an embedded model name, a .gguf path or an HF model directory;"
                + did_you_mean(value, EMBEDDED_MODELS)
            )
        return value


@dataclass(frozen=True, slots=True)
class TrainingRun:
    steps: pa.Table  # schemas.TRAINER_STEPS: one row per optimizer step (cpu_seconds ~2x seconds = both cores busy)
    consumption: pa.Table  # schemas.TRAINER_CONSUMPTION: which curriculum positions each step consumed, in order
    rollouts: pa.Table  # schemas.TRAINER_ROLLOUTS: every sampled completion with its verdict and reward
    adapter_dir: Path  # the saved LoRA adapter (adapter_config.json, adapter_model.safetensors) and run.json
    seconds: float  # wall time of the whole run, loading included
    load_seconds: float = 0.0  # of which reading the shards and loading the model and tokenizer
    model_revision: str = ""  # sha256 of the GGUF file, or the HF directory path
    unconsumed: tuple[int, ...] = field(default=())  # curriculum positions no step reached
    # (step, split, n, correct, accuracy, tokens, seconds): held-out accuracy, step 0 = before training
    evaluations: tuple[dict[str, Any], ...] = field(default=())
    regrades: pa.Table = field(default_factory=TRAINER_REGRADES.empty_table)  # ADCL: answers graded during training
    reestimates: pa.Table = field(default_factory=TRAINER_REESTIMATES.empty_table)  # ADCL: per re-graded problem


def plan_steps(num_problems: int, config: TrainerConfig) -> tuple[int, int]:
    """(optimizer steps to run, steps per pass). A pass is `num_problems // batch_size` steps (the sampler drops
    an incomplete last batch); `steps` is capped at `epochs` passes, so training stops at the curriculum's end."""
    steps_per_epoch = num_problems // config.batch_size
    if steps_per_epoch == 0:
        raise ConfigError(
            f"batch_size={config.batch_size} exceeds the {num_problems} problems in the curriculum; lower batch_size"
        )
    max_steps = min(config.steps, steps_per_epoch * config.epochs)
    if config.steps > max_steps:
        LOG.warning(
            "steps=%d capped at %d: %d pass(es) over the curriculum of %d steps each",
            config.steps,
            max_steps,
            config.epochs,
            steps_per_epoch,
        )
    dropped = num_problems % config.batch_size
    if dropped and max_steps >= steps_per_epoch:
        LOG.warning(
            "the last %d curriculum problem(s) do not fill a batch of %d and are not trained on",
            dropped,
            config.batch_size,
        )
    return max_steps, steps_per_epoch


def _grpo_args(config: TrainerConfig, out_dir: Path, max_steps: int, progress: bool) -> Any:
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out_dir / "trl"),
        max_steps=max_steps,
        per_device_train_batch_size=config.batch_size * config.num_generations,  # completions per step
        gradient_accumulation_steps=1,
        steps_per_generation=1,  # generate for exactly this step's prompts
        num_iterations=1,
        num_generations=config.num_generations,
        shuffle_dataset=False,  # RepeatSampler(shuffle=False): indices 0, 1, 2, … in curriculum order
        max_completion_length=config.max_completion_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        learning_rate=config.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        beta=0.0,  # no KL term, so no reference model in memory
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=config.activation_checkpointing,  # trades ~20-30% time for activation memory
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=not progress,
        log_completions=False,
        dataloader_num_workers=0,
    )


def train_on_curriculum(
    shard_dir: Path,
    config: TrainerConfig,
    models_dir: Path,
    out_dir: Path,
    *,
    progress: bool = True,
    problems: pa.Table | None = None,
    verify_config: VerifyConfig | None = None,
    heldout: HeldoutSplit | None = None,
) -> TrainingRun:
    """Train the student with GRPO + LoRA on the curriculum in `shard_dir`, in its order, and save the adapter
    to `out_dir / "adapter"`. A missing or corrupted shard raises the `CurriculumReader` error before the model
    loads; a model that cannot load raises `ConfigError` naming it. `problems` (the pool table) lets family
    scorers see each problem's metadata; the verifier defaults to one worker process. With `heldout` (and
    `config.heldout.enabled`), the policy's held-out accuracy is measured before, during and after training."""
    started = time.perf_counter()
    rows, dataset = curriculum_dataset(shard_dir, config.prompt)
    max_steps, steps_per_epoch = plan_steps(len(rows), config)
    run = _train(
        rows,
        dataset,
        config,
        models_dir,
        out_dir,
        _Plan(max_steps, steps_per_epoch, started),
        progress=progress,
        problems=problems,
        verify_config=verify_config,
        heldout=heldout,
    )
    consumed = {r["position"] for r in run.consumption.to_pylist()}
    return replace(run, unconsumed=tuple(r["position"] for r in rows if r["position"] not in consumed))


def train_online(
    rows: list[dict[str, Any]],
    schedule: OnlineSchedule | RegradingSchedule,
    config: TrainerConfig,
    models_dir: Path,
    out_dir: Path,
    *,
    progress: bool = True,
    problems: pa.Table | None = None,
    verify_config: VerifyConfig | None = None,
    heldout: HeldoutSplit | None = None,
) -> TrainingRun:
    """Train for `config.steps` steps, each on the problems `schedule` chooses at that step from `rows` (problem
    rows with `problem_id`, `position`, `question`, `answer`, `family`, `difficulty_knob`, `source`), feeding each
    step's rewards back to it (`scoring.training.online`). Otherwise as `train_on_curriculum`."""
    from datasets import Dataset

    started = time.perf_counter()
    if not rows:
        raise ConfigError("online training needs at least one problem")
    # The dataloader only paces the steps (its rows are replaced at each step), so it gets exactly `steps` batches.
    placeholder = Dataset.from_list([dataset_record(rows[0], config.prompt)] * (config.steps * config.batch_size))
    return _train(
        rows,
        placeholder,
        config,
        models_dir,
        out_dir,
        _Plan(config.steps, config.steps, started),
        progress=progress,
        problems=problems,
        verify_config=verify_config,
        heldout=heldout,
        schedule=schedule,
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    max_steps: int
    steps_per_epoch: int
    started: float  # perf_counter() when the run began (shard reading included)


def _train(
    rows: list[dict[str, Any]],
    dataset: Any,
    config: TrainerConfig,
    models_dir: Path,
    out_dir: Path,
    plan: _Plan,
    *,
    progress: bool,
    problems: pa.Table | None,
    verify_config: VerifyConfig | None,
    heldout: HeldoutSplit | None,
    schedule: OnlineSchedule | RegradingSchedule | None = None,
) -> TrainingRun:
    """Load the student, run GRPO with our reward (and the held-out evaluator and online schedule when given),
    save the adapter and return the run's tables."""
    from transformers import set_seed

    pool = {r["problem_id"]: r for r in problems.to_pylist()} if problems is not None else {}
    by_id = {r["problem_id"]: as_problem(r, pool) for r in rows}
    set_seed(config.seed)  # before the LoRA weights are drawn
    lm, tokenizer, revision = load_student(config.model, models_dir, config.precision)
    load_seconds = time.perf_counter() - plan.started
    with Verifier(verify_config or VerifyConfig(workers=1)) as verifier:
        feedback = schedule.feedback if schedule is not None else None
        reward = VerifiedReward(verifier, by_id, plan.steps_per_epoch, on_rewards=feedback)
        callbacks = [step_recorder(reward)]
        evaluator = None
        if heldout is not None and heldout.size and config.heldout.enabled:
            evaluator = HeldoutEvaluator(
                heldout,
                config.heldout,
                verifier=verifier,
                prompt=config.prompt,
                max_tokens=config.max_completion_tokens,
            )
            callbacks.append(evaluator.callback())
        trainer = _grpo_trainer(
            lm,
            tokenizer,
            dataset,
            reward,
            callbacks,
            config,
            out_dir,
            plan.max_steps,
            progress,
            online=schedule is not None,
        )
        if schedule is not None:
            trainer.online_schedule = schedule
            trainer.online_rows = {r["problem_id"]: dataset_record(r, config.prompt) for r in rows}
        if isinstance(schedule, RegradingSchedule):
            schedule.estimator = _policy_estimator(trainer, tokenizer, by_id, verifier, config, schedule)
        trainer.train()
    recorder = callbacks[0]
    regrading = schedule if isinstance(schedule, RegradingSchedule) else None
    adapter_dir = save_adapter(trainer.model, out_dir / "adapter", config, revision, len(recorder.rows), method=METHOD)
    return TrainingRun(
        steps=to_table(recorder.rows, TRAINER_STEPS),
        consumption=to_table(reward.consumption, TRAINER_CONSUMPTION),
        rollouts=to_table(reward.rollouts, TRAINER_ROLLOUTS),
        adapter_dir=adapter_dir,
        seconds=round(time.perf_counter() - plan.started, 3),
        load_seconds=round(load_seconds, 3),
        model_revision=revision,
        evaluations=tuple(evaluator.rows) if evaluator is not None else (),
        regrades=to_table(regrading.answers if regrading else [], TRAINER_REGRADES),
        reestimates=to_table(regrading.estimates if regrading else [], TRAINER_REESTIMATES),
    )


def _policy_estimator(
    trainer: Any,
    tokenizer: Any,
    problems: dict[str, Problem | None],
    verifier: Verifier,
    config: TrainerConfig,
    schedule: RegradingSchedule,
) -> Any:
    """Problem ids -> pass rates of the policy as it is now (`schedule.samples` sampled answers each); the graded
    answers are kept on `schedule.answers` with the step they were taken at."""

    def estimate(problem_ids: list[str]) -> dict[str, float]:
        missing = [pid for pid in problem_ids if problems.get(pid) is None]
        if missing:
            raise ConfigError(f"cannot re-grade {missing[:3]}: pass the pool table (`problems`) to the trainer")
        answers = sample_policy_answers(
            trainer.model,
            tokenizer,
            [problems[pid] for pid in problem_ids],  # type: ignore[misc]
            verifier=verifier,
            prompt=config.prompt,
            max_tokens=config.max_completion_tokens,
            samples=schedule.samples,
            temperature=config.temperature,
            top_p=config.top_p,
            seed=config.seed * 1000 + len(schedule.history),
            batch_size=config.heldout.batch_size,
        )
        schedule.answers += [{"step": schedule.step, **row} for row in answers]
        return pass_rates(answers)

    return estimate


def _grpo_trainer(
    lm: Any,
    tokenizer: Any,
    dataset: Any,
    reward: VerifiedReward,
    callbacks: list[Any],
    config: TrainerConfig,
    out_dir: Path,
    max_steps: int,
    progress: bool,
    *,
    online: bool = False,
) -> Any:
    """TRL's GRPOTrainer (its online subclass with `online`) wrapping the model in a fresh LoRA adapter on all
    linear layers."""
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    trainer_class = online_grpo_trainer_class() if online else GRPOTrainer
    trainer = trainer_class(
        model=lm,
        reward_funcs=[reward],
        args=_grpo_args(config, out_dir, max_steps, progress),
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=lora,
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    return trainer
