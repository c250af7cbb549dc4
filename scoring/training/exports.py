"""Trainer exports of a curriculum shard directory, in curriculum order: verl's RL Parquet, TRL's conversational
prompt-only layout, and a Hugging Face `datasets.Dataset` saved with `save_to_disk`.

Shards are read with `CurriculumReader`, which checks each one against the curriculum manifest (sha256, rows,
positions), so a corrupted shard stops the export before anything is written. The prompt is the chat prompt
the student was graded with (`scoring.grading.rollouts.solve_request`), so training sees what grading saw.

Layout under `out_dir` (one directory per format, each with an `export.json` listing files, rows and sha256
plus the source manifest's sha256):

    verl/train-00000.parquet …  one file per curriculum shard; pass them to verl in the listed order
    trl/train-00000.parquet …   idem
    hf_dataset/                 `datasets.load_from_disk(out_dir / "hf_dataset")`

Every SHARD column this module does not map by name (difficulty stats, stage, weight, token_budget and any
column added to SHARD later) is passed through: into `extra_info` for verl, as a column for TRL.
Training in curriculum order also needs the trainer not to shuffle: verl `data.shuffle=False`
(`verl/trainer/ppo/utils.py`, `create_rl_sampler`), TRL `GRPOConfig(shuffle_dataset=False)`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import datasets
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from engines.errors import ConfigError, IntegrityError, did_you_mean
from scoring.curriculum.shards import MANIFEST, CurriculumReader
from scoring.grading.rollouts import PROMPT_VERSION, PROMPTS, RolloutConfig, solve_request
from scoring.schemas import SHARD
from scoring.storage import write_parquet_atomic, write_text_atomic
from synthesis.problem import Problem

EXPORT_VERSION = 1
EXPORT_MANIFEST = "export.json"
ABILITY = "math"
SPLIT = "train"

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
REWARD_MODEL = pa.struct([("style", pa.string()), ("ground_truth", pa.string())])

# SHARD columns the exports place by name; every other SHARD column is passed through.
MAPPED = ("position", "problem_id", "source", "family", "question", "answer")
PASSTHROUGH = pa.schema([field for field in SHARD if field.name not in MAPPED])

# verl: the columns RLHFDataset and the rule reward managers read (verl/utils/dataset/rl_dataset.py,
# verl/workers/reward_manager/naive.py: reward_model["ground_truth"], data_source, extra_info["index"]).
VERL_EXTRA_INFO = [
    pa.field("index", pa.int64()),  # the curriculum position
    pa.field("split", pa.string()),
    pa.field("problem_id", pa.string()),
    pa.field("source", pa.string()),
    pa.field("family", pa.string()),
    pa.field("question", pa.string()),  # the bare question; `prompt` adds the system prompt and suffix
]
VERL = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", MESSAGES),
        ("ability", pa.string()),
        ("reward_model", REWARD_MODEL),
        ("extra_info", pa.struct(VERL_EXTRA_INFO + list(PASSTHROUGH))),
    ]
)

# TRL (and the HF dataset): a conversational prompt-only dataset; GRPOTrainer hands every other column to the
# reward functions as keyword arguments (trl/trainer/grpo_trainer.py, `reward_kwargs`).
TRL = pa.schema(
    [
        ("prompt", MESSAGES),
        ("answer", pa.string()),
        *((name, SHARD.field(name).type) for name in MAPPED if name != "answer"),
        *PASSTHROUGH,
    ]
)
# Keyword names GRPOTrainer passes to reward functions itself; a column of the same name would clash.
TRL_RESERVED = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")


ExportFormat = Literal["verl", "trl", "hf_dataset"]


class ExportsConfig(BaseModel):
    """Which trainer formats the `trainer_exports` asset writes (the prompt is `rollouts.prompt`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    formats: tuple[ExportFormat, ...] = Field(("verl", "trl", "hf_dataset"), min_length=1)


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What one export wrote."""

    format: str
    path: Path  # the format's directory under out_dir
    files: tuple[Path, ...]  # data files in curriculum order
    rows: int
    manifest: dict[str, Any]  # what was written to `path / export.json`


@dataclass(frozen=True, slots=True)
class _Curriculum:
    manifest: dict[str, Any]
    manifest_sha256: str
    shards: list[tuple[str, int, list[dict[str, Any]]]]  # (shard file, first position, rows in order)


def _check_schemas() -> None:
    """A column added to SHARD must not shadow a name the exports write themselves."""
    verl_taken = {f.name for f in VERL_EXTRA_INFO}
    trl_taken = set(MAPPED) | {"prompt", *TRL_RESERVED}
    for name in PASSTHROUGH.names:
        if name in verl_taken or name in trl_taken:
            raise ConfigError(f"SHARD column {name!r} clashes with an export field of the same name; rename it")


def _read_curriculum(shard_dir: Path) -> _Curriculum:
    """Every shard's rows, verified by CurriculumReader, grouped by shard in manifest order."""
    reader = CurriculumReader(shard_dir)
    raw = (reader.shard_dir / MANIFEST).read_bytes()
    if json.loads(raw) != reader.manifest:
        raise IntegrityError(f"{reader.shard_dir / MANIFEST} changed while it was read; rerun the export")
    rows = reader.rows()
    shards = [(s["file"], int(s["first_position"]), list(islice(rows, int(s["rows"])))) for s in reader.shards]
    if sum(len(chunk) for _, _, chunk in shards) != len(reader):
        raise IntegrityError(f"{reader.shard_dir / MANIFEST}: shard rows do not add up to counts.kept={len(reader)}")
    if not shards:  # also: `save_to_disk` of an empty dataset writes a directory `load_from_disk` cannot read
        excluded = reader.manifest.get("counts", {}).get("excluded")
        raise ConfigError(
            f"the curriculum in {reader.shard_dir} has no problems (excluded: {excluded}); nothing to export"
        )
    return _Curriculum(reader.manifest, hashlib.sha256(raw).hexdigest(), shards)


def _messages(row: dict[str, Any], prompt: str) -> list[dict[str, str]]:
    """The chat messages the student was graded with for this problem (system prompt, question + suffix)."""
    problem = Problem(
        problem_id=row["problem_id"],
        source=row["source"],
        family=row["family"],
        question=row["question"],
        answer=row["answer"],
        source_ref=row["problem_id"],
    )
    request = solve_request(problem, RolloutConfig(prompt=prompt), count=1)
    return [{"role": m.role, "content": m.content} for m in request.messages]


def _verl_row(row: dict[str, Any], prompt: str) -> dict[str, Any]:
    return {
        "data_source": f"{row['source']}/{row['family']}",
        "prompt": _messages(row, prompt),
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": row["answer"]},
        "extra_info": {
            "index": row["position"],
            "split": SPLIT,
            **{name: row[name] for name in ("problem_id", "source", "family", "question")},
            **{name: row[name] for name in PASSTHROUGH.names},
        },
    }


def _trl_row(row: dict[str, Any], prompt: str) -> dict[str, Any]:
    return {"prompt": _messages(row, prompt), **{name: row[name] for name in TRL.names[1:]}}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _export_manifest(
    fmt: str, cur: _Curriculum, prompt: str, schema: pa.Schema, files: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "export_version": EXPORT_VERSION,
        "format": fmt,
        "prompt_version": prompt,
        "rows": sum(f["rows"] for f in files),
        "columns": schema.names,
        "passthrough": PASSTHROUGH.names,
        "files": files,
        "source": {
            "manifest": MANIFEST,
            "manifest_sha256": cur.manifest_sha256,
            "strategy": cur.manifest.get("strategy"),
            "order": cur.manifest.get("order"),
            "student_id": cur.manifest.get("student_id"),
        },
        "order": "curriculum position ascending; files in listed order; do not shuffle in the trainer",
    }


def _write_parquet_format(
    fmt: str,
    cur: _Curriculum,
    out_dir: Path,
    prompt: str,
    schema: pa.Schema,
    to_row: Callable[[dict[str, Any], str], dict[str, Any]],
) -> ExportResult:
    """One `train-NNNNN.parquet` per shard, then `export.json` (the commit point); stale files removed."""
    target = out_dir / fmt
    paths, files = [], []
    for index, (shard_file, first_position, rows) in enumerate(cur.shards):
        table = pa.Table.from_pylist([to_row(row, prompt) for row in rows], schema=schema)
        path = write_parquet_atomic(table, target / f"train-{index:05d}.parquet")
        paths.append(path)
        files.append(
            {
                "file": path.name,
                "rows": table.num_rows,
                "sha256": _sha256(path),
                "first_position": first_position,
                "source_shard": shard_file,
            }
        )
    manifest = _export_manifest(fmt, cur, prompt, schema, files)
    target.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", target / EXPORT_MANIFEST)
    live = {p.name for p in paths}
    for stale in target.glob("train-*.parquet"):
        if stale.name not in live:
            stale.unlink()
    return ExportResult(fmt, target, tuple(paths), manifest["rows"], manifest)


def _write_verl(cur: _Curriculum, out_dir: Path, prompt: str) -> ExportResult:
    return _write_parquet_format("verl", cur, out_dir, prompt, VERL, _verl_row)


def _write_trl(cur: _Curriculum, out_dir: Path, prompt: str) -> ExportResult:
    return _write_parquet_format("trl", cur, out_dir, prompt, TRL, _trl_row)


def replace_dir(tmp: Path, target: Path, attempts: int = 5) -> None:
    """Move the finished directory `tmp` to `target`, replacing an older export. The old one is renamed aside
    first (a directory cannot be renamed over a non-empty one), so `target` is briefly absent, never partial.
    A concurrent run may publish its own copy in that moment (the rename then fails with ENOTEMPTY): set that
    one aside too and try again — both copies were built from the same inputs."""
    for attempt in range(attempts):
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.replace(target, old)
        except FileNotFoundError:
            old = None  # no previous export, or a concurrent run just set it aside
        try:
            os.replace(tmp, target)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or attempt == attempts - 1:
                raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)


def _write_hf_dataset(cur: _Curriculum, out_dir: Path, prompt: str) -> ExportResult:
    """`save_to_disk` into a temporary directory beside the target, add `export.json`, then swap it in."""
    fmt = "hf_dataset"
    table = pa.Table.from_pylist([_trl_row(row, prompt) for _, _, rows in cur.shards for row in rows], schema=TRL)
    # A fingerprint from the inputs (not a random one) keeps state.json, and so the whole directory, identical
    # across reruns.
    fingerprint = hashlib.sha256(f"{fmt}:{EXPORT_VERSION}:{cur.manifest_sha256}:{prompt}".encode()).hexdigest()[:16]
    target = out_dir / fmt
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{fmt}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        datasets.Dataset(table, fingerprint=fingerprint).save_to_disk(str(tmp))
        files = [{"file": p.name, "sha256": _sha256(p)} for p in sorted(tmp.iterdir()) if p.name != EXPORT_MANIFEST]
        manifest = _export_manifest(fmt, cur, prompt, TRL, [])
        manifest.update(rows=table.num_rows, files=files)
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", tmp / EXPORT_MANIFEST)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    data = tuple(target / f["file"] for f in files if f["file"].endswith(".arrow"))
    return ExportResult(fmt, target, data, table.num_rows, manifest)


WRITERS: dict[str, Callable[[_Curriculum, Path, str], ExportResult]] = {
    "verl": _write_verl,
    "trl": _write_trl,
    "hf_dataset": _write_hf_dataset,
}
FORMATS = tuple(WRITERS)


def _prepare(shard_dir: Path, prompt: str) -> _Curriculum:
    if prompt not in PROMPTS:
        raise ConfigError(f"unknown prompt {prompt!r};" + did_you_mean(prompt, PROMPTS))
    _check_schemas()
    return _read_curriculum(Path(shard_dir))


def export_verl(shard_dir: Path, out_dir: Path, *, prompt: str = PROMPT_VERSION) -> ExportResult:
    """Write verl's RL Parquet layout to `out_dir/verl/`: one `train-NNNNN.parquet` per curriculum shard with
    columns data_source, prompt (chat messages), ability, reward_model {style, ground_truth} and extra_info
    (index = curriculum position, split, problem id, question, difficulty stats, passthrough columns)."""
    return _write_verl(_prepare(shard_dir, prompt), Path(out_dir), prompt)


def export_trl(shard_dir: Path, out_dir: Path, *, prompt: str = PROMPT_VERSION) -> ExportResult:
    """Write TRL's conversational prompt-only layout to `out_dir/trl/`: one `train-NNNNN.parquet` per shard
    with `prompt` (chat messages), `answer` (the ground truth) and every other shard column, which
    GRPOTrainer passes to reward functions as keyword arguments."""
    return _write_trl(_prepare(shard_dir, prompt), Path(out_dir), prompt)


def export_hf_dataset(shard_dir: Path, out_dir: Path, *, prompt: str = PROMPT_VERSION) -> ExportResult:
    """Save the TRL layout as one `datasets.Dataset` in curriculum order to `out_dir/hf_dataset/`, loadable
    with `datasets.load_from_disk`."""
    return _write_hf_dataset(_prepare(shard_dir, prompt), Path(out_dir), prompt)


def export(
    shard_dir: Path, out_dir: Path, formats: Sequence[str], *, prompt: str = PROMPT_VERSION
) -> dict[str, ExportResult]:
    """Export the curriculum in each named format ("verl", "trl", "hf_dataset"), reading the shards once.

    Unknown format names fail before anything is read or written."""
    names = list(dict.fromkeys([formats] if isinstance(formats, str) else formats))
    if not names:
        raise ConfigError("no export format given; available: " + ", ".join(WRITERS))
    for name in names:
        if name not in WRITERS:
            raise ConfigError(f"unknown export format {name!r};" + did_you_mean(name, WRITERS))
    cur = _prepare(shard_dir, prompt)
    return {name: WRITERS[name](cur, Path(out_dir), prompt) for name in names}
