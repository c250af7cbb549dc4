"""The trainer's inputs: the student model loaded for training (from a GGUF file or an HF directory), the TRL
dataset rows in the prompt format of grading, and the full problem each row stands for (for family scorers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engines.errors import ConfigError
from engines.models import is_model_path, resolve_model_file
from scoring.curriculum.shards import CurriculumReader
from scoring.grading.rollouts import PROMPTS
from synthesis.families import FAMILIES
from synthesis.problem import Problem

# trainer.precision -> the torch dtype the base weights are held in (the LoRA adapter stays fp32: peft upcasts it)
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}


def load_student(model: str, models_dir: Path, precision: str = "fp32") -> tuple[Any, Any, str]:
    """(causal LM in `precision`, tokenizer, revision) for a config `model`; a model that cannot load is a
    `ConfigError` naming it. GGUF weights are de-quantized by transformers (to `precision` tensor by tensor), so
    the quantizer marker is cleared for training. `bf16` halves the weights' memory (1.5B: ~3 GB instead of ~6)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    dtype = getattr(torch, PRECISIONS[precision])

    path = Path(model).expanduser()
    if is_model_path(model) and path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model {model!r} is a directory without config.json, so not an HF model directory")
        where, kwargs, revision = path, {}, str(path.resolve())
    else:
        gguf, revision = resolve_model_file(model, models_dir)
        where, kwargs = gguf.parent, {"gguf_file": gguf.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(where), **kwargs)
        lm = AutoModelForCausalLM.from_pretrained(str(where), dtype=dtype, **kwargs)
    except Exception as exc:  # third-party loaders raise many types (struct.error, OSError, …): name the model
        raise ConfigError(f"model {model!r} could not be loaded from {where}: {type(exc).__name__}: {exc}") from exc
    # The GGUF weights are plain tensors by now, but the loader's quantizer marker makes Trainer refuse them.
    lm.hf_quantizer = None
    lm.is_quantized = False
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return lm, tokenizer, revision


def student_revision(model: str, models_dir: Path) -> str:
    """The revision `load_student` reports for `model`, without loading it: the GGUF file's sha256, or the HF
    directory's resolved path."""
    path = Path(model).expanduser()
    if is_model_path(model) and path.is_dir():
        return str(path.resolve())
    return resolve_model_file(model, models_dir)[1]


def curriculum_dataset(shard_dir: Path, prompt: str) -> tuple[list[dict[str, Any]], Any]:
    """The shard rows in manifest order (sha256-checked by `CurriculumReader`) and the matching TRL dataset:
    a conversational `prompt` plus the columns the reward function receives."""
    from datasets import Dataset

    rows = list(CurriculumReader(shard_dir).rows())
    return rows, Dataset.from_list([dataset_record(r, prompt) for r in rows])


def dataset_record(row: dict[str, Any], prompt: str) -> dict[str, Any]:
    """One TRL dataset row for a problem row (`problem_id`, `position`, `question`, `answer`): a conversational
    prompt with the same text as grading, plus the columns the reward function receives."""
    system, suffix = PROMPTS[prompt]
    return {
        "prompt": [{"role": "system", "content": system}, {"role": "user", "content": row["question"] + suffix}],
        "problem_id": row["problem_id"],
        "position": row["position"],
        "answer": row["answer"],
    }


def as_problem(row: dict[str, Any], pool: dict[str, dict[str, Any]]) -> Problem | None:
    """The full problem for family scorers: from the pool when given, else from the shard row for a registered
    family (whose scorers need no metadata beyond the question and answer)."""
    if row["problem_id"] in pool:
        return Problem(**pool[row["problem_id"]])
    if row["family"] not in FAMILIES:
        return None
    return Problem(
        problem_id=row["problem_id"],
        source=row["source"],
        family=row["family"],
        question=row["question"],
        answer=row["answer"],
        source_ref=f"curriculum:{row['position']}",
        difficulty_knob=row["difficulty_knob"],
    )


def save_adapter(model: Any, adapter_dir: Path, config: Any, revision: str, steps: int, *, method: str) -> Path:
    """The LoRA weights and config (peft's format) plus `run.json`: what base model and settings produced them."""
    import peft
    import torch
    import transformers
    import trl

    adapter_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(adapter_dir), save_embedding_layers=False)  # LoRA targets linear layers only
    versions = {"torch": torch, "transformers": transformers, "trl": trl, "peft": peft}
    run = {
        "method": method,
        "config": config.model_dump(),
        "base_model_revision": revision,
        "steps": steps,
        "versions": {name: module.__version__ for name, module in versions.items()},
        "torch_threads": torch.get_num_threads(),
    }
    (adapter_dir / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    return adapter_dir
