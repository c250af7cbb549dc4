"""Supervised fine-tuning of the student on reasoning traces (issue 26: does the supervision selection matter?).

The input is what the supervision exports hold for TRL (`messages` = system, user, assistant trace); each row is
split into TRL's conversational prompt-completion form, so the loss falls on the trace only, never on the prompt.
The student trains a LoRA adapter with TRL's `SFTTrainer` on the CPU, seeded (LoRA init, batch order, dropout), and
the trained model is returned in memory for a held-out evaluation (`scoring.training.evaluation`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engines.errors import ConfigError
from scoring.training.student import load_student

SFT_METHOD = "sft_lora_v1"


class SftConfig(BaseModel):
    """How a set of traces is trained on. The defaults fit a 2-core CPU and SmolLM2-135M: a few dozen traces of
    ~300 tokens, three passes, in about a minute."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("smollm2-135m-instruct-q4_1", description="an embedded model name, .gguf path or HF dir")
    epochs: int = Field(3, ge=1, description="passes over the traces")
    batch_size: int = Field(4, ge=1, description="traces per optimizer step")
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0, description="AdamW learning rate of the LoRA weights")
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    max_length: int = Field(640, ge=16, description="tokens per example (prompt + trace); longer ones are cut")
    seed: int = Field(0, ge=0, description="seeds the LoRA init, the batch order and dropout")


@dataclass(frozen=True, slots=True)
class SftRun:
    """A finished SFT run: the trained model (LoRA-wrapped), its tokenizer and what it cost."""

    model: Any
    tokenizer: Any
    examples: int
    steps: int
    train_loss: float | None  # mean over the run, as the trainer reports it
    seconds: float  # wall time, model load included
    cpu_seconds: float  # this process's CPU time (both cores busy: about twice the wall time)
    load_seconds: float
    model_revision: str


def prompt_completion(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """TRL prompt-completion rows from rows with a conversational `messages` column whose last message is the
    assistant's trace; a row of another shape is a `ConfigError` naming its position."""
    out = []
    for index, row in enumerate(rows):
        messages = [{"role": m["role"], "content": m["content"]} for m in row.get("messages") or ()]
        if len(messages) < 2 or messages[-1]["role"] != "assistant" or not messages[-1]["content"]:
            raise ConfigError(
                f"SFT row {index} needs `messages` ending with a non-empty assistant message, got roles "
                f"{[m['role'] for m in messages]}"
            )
        out.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return out


def train_sft(
    rows: Sequence[Mapping[str, Any]], config: SftConfig, models_dir: Path, out_dir: Path, *, progress: bool = False
) -> SftRun:
    """Train a LoRA adapter on `rows` (TRL SFT `messages` rows) and return the trained model in memory; nothing
    but the trainer's scratch directory `out_dir` is written."""
    import peft
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ConfigError("SFT needs at least one trace")
    started, cpu_started = time.perf_counter(), time.process_time()
    dataset = Dataset.from_list(prompt_completion(rows))
    set_seed(config.seed)  # before the LoRA weights are drawn
    lm, tokenizer, revision = load_student(config.model, models_dir)
    load_seconds = time.perf_counter() - started
    args = SFTConfig(
        output_dir=str(out_dir / "trl"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=config.learning_rate,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_length=config.max_length,
        completion_only_loss=True,  # the prompt is given, the trace is learned
        packing=False,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,  # TRL turns it on for SFT; memory is plentiful on CPU, recomputing is not
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataset_num_proc=None,
    )
    lora = peft.LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
        task_type="CAUSAL_LM",
    )  # fmt: skip
    trainer = SFTTrainer(model=lm, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora)
    result = trainer.train()
    return SftRun(
        model=trainer.model,
        tokenizer=tokenizer,
        examples=len(rows),
        steps=int(result.global_step),
        train_loss=float(result.training_loss) if result.training_loss is not None else None,
        seconds=round(time.perf_counter() - started, 3),
        cpu_seconds=round(time.process_time() - cpu_started, 3),
        load_seconds=round(load_seconds, 3),
        model_revision=revision,
    )
