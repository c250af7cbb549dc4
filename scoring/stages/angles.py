"""GAIN-RL's angle signal as a cached table (methods §16): `angle_signals` holds one row per (problem, model
revision, signal version, prompt), so the student is loaded and run only for the problems missing there. The
`gain_rl` curriculum strategy and ablation arm read their scores from it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow.compute as pc

from scoring.schemas import ANGLE_SIGNAL_KEY, ANGLE_SIGNALS, to_table
from scoring.storage import DataRoot
from scoring.training.angles import ANGLE_SIGNAL, angle_scores
from scoring.training.student import load_student, student_revision


@dataclass(frozen=True, slots=True)
class AngleSignals:
    """Each asked problem's angle score under one model, and how many had to be computed now."""

    scores: dict[str, float]
    computed: int
    model_revision: str


def cached_angle_signals(
    root: DataRoot,
    problems: Sequence[tuple[str, str]],
    *,
    model: str,
    prompt: str,
    batch_size: int = 8,
) -> AngleSignals:
    """The angle scores of `problems` ((problem id, question) pairs) under `model` (a trainer `model`: embedded
    name, .gguf path or HF directory) with the trainer's `prompt`: stored rows are reused, the missing ones are
    computed in one load of the model (fp32 on CPU, `scoring.training.student.load_student`) and appended to
    `angle_signals`."""
    revision = student_revision(model, root.models_dir)
    stored = _stored_scores(root, revision, prompt)
    missing = [(pid, question) for pid, question in dict(problems).items() if pid not in stored]
    if missing:
        lm, tokenizer, _ = load_student(model, root.models_dir)
        fresh = angle_scores(lm, tokenizer, missing, prompt, batch_size=batch_size)
        rows = [
            {
                "problem_id": pid,
                "model_revision": revision,
                "signal_version": ANGLE_SIGNAL,
                "prompt": prompt,
                "model": model,
                "angle_score": s.score,
                "c_intra": s.c_intra,
                "c_inter": s.c_inter,
                "prefix_tokens": s.prefix_tokens,
                "question_tokens": s.question_tokens,
            }
            for pid, s in sorted(fresh.items())
        ]
        root.upsert_table("angle_signals", to_table(rows, ANGLE_SIGNALS), ANGLE_SIGNAL_KEY)
        stored |= {pid: s.score for pid, s in fresh.items()}
    return AngleSignals({pid: stored[pid] for pid, _ in problems}, len(missing), revision)


def _stored_scores(root: DataRoot, revision: str, prompt: str) -> dict[str, float]:
    if not root.has_rows("angle_signals"):
        return {}
    table = root.read_table("angle_signals", columns=[*ANGLE_SIGNAL_KEY, "angle_score"])
    mine = table.filter(
        pc.and_(
            pc.and_(pc.equal(table["model_revision"], revision), pc.equal(table["signal_version"], ANGLE_SIGNAL)),
            pc.equal(table["prompt"], prompt),
        )
    )
    return dict(zip(mine["problem_id"].to_pylist(), mine["angle_score"].to_pylist(), strict=True))
