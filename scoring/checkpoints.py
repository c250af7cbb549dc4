"""New student checkpoints: find them in a watched directory and keep a registry of the students graded so far.

A training job drops checkpoints (GGUF files, or model directories for vLLM/servers) into a directory; the
Dagster sensor (`pipelines/sensors.py`) calls `new_checkpoints` every tick, registers each new one here and
launches a re-grade for it. A file still being written is skipped until it has not changed for `min_age_s`.
The registry is `<data root>/students.json`, written atomically; the scheduled re-grade uses its latest entry.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engines.errors import ConfigError
from scoring.storage import DataRoot, safe_name, write_text_atomic

REGISTRY = "students.json"


class ScheduleConfig(BaseModel):
    """When the scheduled re-grade of the latest registered student runs (cron, evaluated by Dagster)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str = Field("0 3 * * *", description="cron schedule of the re-grade (default: daily at 03:00)")
    timezone: str = Field("UTC", description="IANA timezone the cron is read in")
    enabled: bool = Field(False, description="start the schedule running (else it is off until turned on in the UI)")


class CheckpointWatch(BaseModel):
    """A directory the checkpoint sensor watches for new student checkpoints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: str = Field(description="directory a trainer writes checkpoints into")
    pattern: str = Field("*.gguf", description="glob of checkpoint files (or directories) inside it")
    min_age_s: float = Field(30.0, ge=0.0, description="skip a checkpoint modified less than this long ago")
    student_prefix: str = Field("", description="prepended to the file stem to make the student id")


class RegenerationConfig(BaseModel):
    """Scheduled re-grading and the checkpoint sensor (`regeneration:` in gradus.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    checkpoints: CheckpointWatch | None = Field(None, description="watch a directory for new student checkpoints")
    sensor_interval_s: int = Field(30, ge=5, description="seconds between checkpoint sensor ticks")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint found on disk: the student id it becomes, its path, and its size/mtime signature."""

    student_id: str
    model: str
    signature: str


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def student_id_for(path: Path, prefix: str = "") -> str:
    """A safe student id from a checkpoint's name: `ckpt-step100.gguf` → `ckpt-step100` (prefix prepended)."""
    stem = path.name[: -len(path.suffix)] if path.is_file() and path.suffix else path.name
    cleaned = _UNSAFE.sub("-", f"{prefix}{stem}").strip("-.") or "checkpoint"
    return safe_name(cleaned.replace("..", "."), "student id")


def _signature(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def new_checkpoints(
    watch: CheckpointWatch, seen: dict[str, str], now: float, base_dir: Path = Path(".")
) -> list[Checkpoint]:
    """Checkpoints in the watched directory not in `seen` (path → signature) or changed since, old enough to be
    complete, oldest first (then by name). A missing directory is a `ConfigError` naming it."""
    directory = Path(watch.directory)
    directory = directory if directory.is_absolute() else base_dir / directory
    if not directory.is_dir():
        raise ConfigError(f"regeneration.checkpoints.directory {str(directory)!r} is not a directory")
    found = []
    for path in directory.glob(watch.pattern):
        if path.name.startswith("."):
            continue  # temp files of an atomic writer
        mtime = path.stat().st_mtime
        signature = _signature(path)
        if now - mtime < watch.min_age_s or seen.get(str(path)) == signature:
            continue
        found.append((mtime, path.name, Checkpoint(student_id_for(path, watch.student_prefix), str(path), signature)))
    return [checkpoint for _, _, checkpoint in sorted(found, key=lambda item: (item[0], item[1]))]


def read_registry(root: DataRoot) -> list[dict[str, str]]:
    """Registered students, oldest first; an unreadable registry is an error naming the file."""
    path = root.path / REGISTRY
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"student registry {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "student_id" in e for e in entries):
        raise ConfigError(f"student registry {str(path)!r} must be a JSON list of {{student_id, model, ...}}")
    return entries


def register(root: DataRoot, checkpoint: Checkpoint, when: datetime | None = None) -> bool:
    """Add (or update) a checkpoint's student in the registry; False when it was already registered as is."""
    entries = read_registry(root)
    entry = asdict(checkpoint) | {"registered_at": (when or datetime.now(UTC)).isoformat(timespec="seconds")}
    for index, existing in enumerate(entries):
        if existing["student_id"] == checkpoint.student_id:
            if existing.get("signature") == checkpoint.signature and existing.get("model") == checkpoint.model:
                return False
            entries[index] = entry
            break
    else:
        entries.append(entry)
    write_text_atomic(json.dumps(entries, indent=2) + "\n", root.path / REGISTRY)
    return True


def registered_model(root: DataRoot, student_id: str) -> str | None:
    """The checkpoint path registered for `student_id`, or None."""
    return next((e.get("model") for e in read_registry(root) if e["student_id"] == student_id), None)


def latest_student(root: DataRoot) -> dict[str, str] | None:
    """The most recently registered checkpoint's entry, or None when none was registered."""
    entries = read_registry(root)
    if not entries:
        return None
    # the latest registration wins; among equal timestamps, the later entry
    return max(enumerate(entries), key=lambda item: (item[1].get("registered_at", ""), item[0]))[1]
