"""Supervision data in the formats trainers read: SFT traces (TRL `messages`, verl SFT Parquet, a Hugging Face
dataset) per selection policy, and preference pairs (TRL DPO `prompt`/`chosen`/`rejected`, a HF dataset).

Layout under an export directory (one per policy, one for the pairs), each format with an `export.json` that lists
its files, rows, sha256 and where the rows came from:

    trl/train-00000.parquet      TRL SFTTrainer: a conversational `messages` column (system, user, assistant);
                                 DPOTrainer: conversational `prompt`, `chosen`, `rejected`
    verl/train-00000.parquet     verl SFT: `prompt` and `response` strings (SFTDataset's default keys) and the whole
                                 conversation in `messages` (MultiTurnSFTDataset), `extra_info` with the provenance
    hf_dataset/                  `datasets.load_from_disk(...)` of the TRL layout

Rows are in the selection's order (`position`); every other column (verdict, step error rate, the student's pass
rate, ...) travels along so a trainer or an ablation can filter or weight by it. Writes are atomic: a reader sees
the previous export or the new one, never a mix; an empty selection removes the stale export instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import datasets
import pyarrow as pa

from scoring.storage import write_parquet_atomic, write_text_atomic
from scoring.training.exports import EXPORT_MANIFEST, MESSAGES, replace_dir

SUPERVISION_EXPORT_VERSION = 1
DATA_FILE = "train-00000.parquet"
SupervisionFormat = Literal["trl", "verl", "hf_dataset"]
FORMATS: tuple[SupervisionFormat, ...] = ("trl", "verl", "hf_dataset")

# Columns that ride along with every SFT row (TRL keeps them as dataset columns; verl in `extra_info`).
_SFT_INFO = [
    pa.field("position", pa.int32()),
    pa.field("problem_id", pa.string()),
    pa.field("policy", pa.string()),
    pa.field("answer", pa.string()),  # the gold answer
    pa.field("role", pa.string()),
    pa.field("model_id", pa.string()),
    pa.field("sample_index", pa.int32()),
    pa.field("verdict", pa.string()),
    pa.field("step_error_rate", pa.float64()),
    pa.field("step_method", pa.string()),
    pa.field("trace_chars", pa.int32()),
    pa.field("pass_rate", pa.float64()),
    pa.field("post_mean", pa.float64()),
]
TRL_SFT = pa.schema([pa.field("messages", MESSAGES), *_SFT_INFO])
VERL_SFT = pa.schema(
    [
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("messages", MESSAGES),
        ("data_source", pa.string()),
        ("extra_info", pa.struct(_SFT_INFO)),
    ]
)
TRL_DPO = pa.schema(
    [
        ("prompt", MESSAGES),
        ("chosen", MESSAGES),
        ("rejected", MESSAGES),
        ("problem_id", pa.string()),
        ("method", pa.string()),
        ("answer", pa.string()),
        ("kind", pa.string()),  # student_vs_student | teacher_vs_student
        ("chosen_role", pa.string()),
        ("chosen_index", pa.int32()),
        ("rejected_index", pa.int32()),
        ("chosen_verdict", pa.string()),
        ("rejected_verdict", pa.string()),
        ("reason", pa.string()),
        ("pass_rate", pa.float64()),
        ("post_mean", pa.float64()),
    ]
)


@dataclass(frozen=True, slots=True)
class SupervisionExport:
    """What one format of one export wrote."""

    format: str
    path: Path
    rows: int


def sft_row(
    trace: Mapping[str, Any], prompt: Sequence[Mapping[str, str]], *, policy: str, position: int, answer: str
) -> dict[str, Any]:
    """One TRL SFT row: the trace's prompt messages plus the trace as the assistant turn, and its provenance."""
    messages = [*(dict(m) for m in prompt), {"role": "assistant", "content": trace["completion"]}]
    info = {name: trace.get(name) for name in TRL_SFT.names if name not in ("messages",)}
    return {"messages": messages, **info, "position": position, "policy": policy, "answer": answer}


def dpo_row(pair: Mapping[str, Any], prompt: Sequence[Mapping[str, str]], *, answer: str) -> dict[str, Any]:
    """One TRL DPO row: the student's prompt, and the chosen and rejected samples as assistant turns."""
    return {
        "prompt": [dict(m) for m in prompt],
        "chosen": [{"role": "assistant", "content": pair["chosen"]}],
        "rejected": [{"role": "assistant", "content": pair["rejected"]}],
        **{name: pair[name] for name in TRL_DPO.names[3:] if name != "answer"},
        "answer": answer,
    }


def _verl_sft_row(row: Mapping[str, Any]) -> dict[str, Any]:
    messages = row["messages"]
    user = next(m["content"] for m in messages if m["role"] == "user")
    return {
        "prompt": user,
        "response": messages[-1]["content"],
        "messages": messages,
        "data_source": f"gradus/{row['policy']}",
        "extra_info": {name: row[name] for name in TRL_SFT.names if name != "messages"},
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(fmt: str, kind: str, table: pa.Table, files: list[dict[str, Any]], source: Mapping[str, Any]) -> str:
    manifest = {
        "export_version": SUPERVISION_EXPORT_VERSION,
        "format": fmt,
        "kind": kind,
        "rows": table.num_rows,
        "columns": table.column_names,
        "files": files,
        "source": dict(source),
        "order": "position ascending (the selection's order)" if kind == "sft" else "problem_id, chosen, rejected",
    }
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def _write_parquet(table: pa.Table, target: Path, kind: str, fmt: str, source: Mapping[str, Any]) -> None:
    path = write_parquet_atomic(table, target / DATA_FILE)
    files = [{"file": path.name, "rows": table.num_rows, "sha256": _sha256(path)}]
    write_text_atomic(_manifest(fmt, kind, table, files, source), target / EXPORT_MANIFEST)


def _write_hf_dataset(table: pa.Table, target: Path, kind: str, source: Mapping[str, Any]) -> None:
    """`save_to_disk` beside the target, add `export.json`, then swap the directory in."""
    # A fingerprint from the content (not a random one) keeps the directory identical across reruns.
    fingerprint = hashlib.sha256(json.dumps(table.to_pylist(), sort_keys=True, default=str).encode()).hexdigest()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        datasets.Dataset(table, fingerprint=fingerprint[:16]).save_to_disk(str(tmp))
        files = [{"file": p.name, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())]
        write_text_atomic(_manifest("hf_dataset", kind, table, files, source), tmp / EXPORT_MANIFEST)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_exports(
    rows: Sequence[Mapping[str, Any]],
    out_dir: Path,
    formats: Sequence[SupervisionFormat],
    *,
    kind: Literal["sft", "dpo"],
    source: Mapping[str, Any],
) -> list[SupervisionExport]:
    """Write SFT rows (`sft_row`) or DPO rows (`dpo_row`) in each format under `out_dir/<format>/`; `source`
    (policy, student, table versions) goes into every `export.json`. No rows: the old export is removed, since the
    trainers' readers cannot load an empty dataset and a stale one would be mistaken for this run's."""
    if not rows:
        shutil.rmtree(out_dir, ignore_errors=True)
        return []
    trl = pa.Table.from_pylist(list(rows), schema=TRL_SFT if kind == "sft" else TRL_DPO)
    written = []
    for fmt in dict.fromkeys(formats):
        target = out_dir / fmt
        if fmt == "trl":
            _write_parquet(trl, target, kind, fmt, source)
        elif fmt == "verl" and kind == "sft":
            verl = pa.Table.from_pylist([_verl_sft_row(r) for r in trl.to_pylist()], schema=VERL_SFT)
            _write_parquet(verl, target, kind, fmt, source)
        elif fmt == "verl":
            continue  # verl trains preference pairs through its own reward models, not from a DPO file
        else:
            _write_hf_dataset(trl, target, kind, source)
        written.append(SupervisionExport(fmt, target, trl.num_rows))
    return written
