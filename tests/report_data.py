"""A small data root holding every table the picture report draws from, written through the real storage API (no
model): two families with knobs plus an imported source, two graded revisions of one student, a curriculum's
shards, near-duplicates, benchmark matches, a skill profile, and a training run with held-out evaluations.
Used by the report's unit, CLI/asset and browser tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from scoring.schemas import SHARD, STUDENT_REVISIONS, TABLES, to_table
from scoring.storage import DataRoot, write_parquet_atomic

STUDENT = "tiny"
OLD, NEW = "rev-a", "rev-b"
STRATEGY = "easy_to_hard_v1"
RUN = "grpo_lora_v1-test"
INJECTION = "<script>alert('x')</script>"  # a question that must reach the page escaped, never as markup


def _problems() -> list[dict[str, object]]:
    rows = []
    for family in ("arithmetic", "linear_equations"):
        for knob in (1, 2, 3):
            for index in range(3):
                rows.append(
                    {
                        "problem_id": f"{family[:3]}-{knob}-{index}",
                        "source": "procedural",
                        "family": family,
                        "question": f"{family} question {knob}.{index}: what is {knob} + {index}?",
                        "answer": str(knob + index),
                        "difficulty_knob": knob,
                    }
                )
    for index in range(3):
        rows.append(
            {
                "problem_id": f"gsm-{index}",
                "source": "gsm8k",
                "family": "gsm8k",
                "question": f"Tom has {index + 3} apples and eats one. How many are left? {INJECTION}",
                "answer": str(index + 2),
                "difficulty_knob": None,
            }
        )
    return rows


def _difficulty(problems: list[dict[str, object]], revision: str, shift: int) -> list[dict[str, object]]:
    rows = []
    for number, problem in enumerate(problems):
        knob = int(problem["difficulty_knob"] or 2)
        n = 4 if number % 3 else 8  # a mix of early stops and full rounds, as adaptive grading leaves them
        k = max(0, min(n, n - knob - (number % 2) + shift))
        rate = k / n
        rows.append(
            {
                "problem_id": problem["problem_id"],
                "student_id": STUDENT,
                "student_revision": revision,
                "sampling_hash": "s0",
                "verifier_version": "math_verify_v1",
                "family": problem["family"],
                "n": n,
                "k": k,
                "n_timeout": 0,
                "n_error": 0,
                "pass_rate": rate,
                "post_mean": (k + 1) / (n + 2),
                "post_lo": max(0.0, rate - 0.2),
                "post_hi": min(1.0, rate + 0.2),
                "band": "too_hard" if rate <= 0.1 else "too_easy" if rate >= 0.9 else "learnable",
                "method": "adaptive_v1",
                "stop_reason": "band_certain" if n < 8 else "max_k",
            }
        )
    return rows


def _shards(root: DataRoot, difficulty: list[dict[str, object]]) -> None:
    kept = sorted((r for r in difficulty if r["band"] == "learnable"), key=lambda r: (-r["post_mean"], r["problem_id"]))
    rows = [
        {
            "position": position,
            "problem_id": r["problem_id"],
            "family": r["family"],
            "post_mean": r["post_mean"],
            "difficulty": 1 - r["post_mean"],
            "stage": 0 if r["post_mean"] >= 0.5 else 1,
        }
        for position, r in enumerate(kept)
    ]
    directory = root.shards_dir / STUDENT / STRATEGY
    for start in range(0, len(rows), 4):
        chunk = pa.Table.from_pylist(rows[start : start + 4], schema=SHARD)
        write_parquet_atomic(chunk, directory / f"shard-{start // 4:05d}.parquet")


def build_report_root(path: Path) -> DataRoot:
    """Write the data root at `path` and return it."""
    root = DataRoot(path)
    problems = _problems()
    root.write_table("problems", to_table(problems, TABLES["problems"]))
    old, new = _difficulty(problems, OLD, 0), _difficulty(problems, NEW, 1)
    root.write_table("difficulty", to_table(old + new, TABLES["difficulty"]), {"student": STUDENT})
    graded = {OLD: datetime(2026, 1, 1, tzinfo=UTC), NEW: datetime(2026, 1, 2, tzinfo=UTC)}
    revisions = [
        {"student_id": STUDENT, "student_revision": rev, "model": "m", "first_graded_at": at}
        for rev, at in graded.items()
    ]
    root.write_table("student_revisions", to_table(revisions, STUDENT_REVISIONS), {"student": STUDENT})
    _shards(root, new)
    root.write_table(
        "duplicates",
        to_table(
            [{"problem_id": "gsm-2", "cluster_id": "c0", "kept_id": "gsm-1", "similarity": 0.91, "method": "minhash"}],
            TABLES["duplicates"],
        ),
    )
    root.write_table(
        "contamination",
        to_table(
            [
                {
                    "problem_id": "gsm-0",
                    "benchmark": "gsm8k_test",
                    "benchmark_item_id": "17",
                    "score": 0.97,
                    "method": "ngram13",
                    "matched_text": "Tom has 3 apples and eats one. How many apples are left?",
                },
            ],  # fmt: skip
            TABLES["contamination"],
        ),
    )
    root.write_table(
        "skills",
        to_table(
            [
                {"skill_id": f"s{i}", "name": name, "definition": name, "source": "test"}
                for i, name in enumerate(["carrying", "isolating x", "reading the question"])
            ],  # fmt: skip
            TABLES["skills"],
        ),
    )
    profile = [
        {"student_id": STUDENT, "student_revision": NEW, "skill_id": f"s{i}", "n_problems": 5 + i, "pass_rate": rate,
         "pass_lo": rate - 0.1, "pass_hi": rate + 0.1, "n_failures": 4, "n_fail_attributed": 3, "fail_share": share}
        for i, (rate, share) in enumerate([(0.3, 0.5), (0.6, 0.3), (0.8, 0.2)])
    ]  # fmt: skip
    root.write_table("skill_profile", to_table(profile, TABLES["skill_profile"]), {"student": STUDENT})
    part = {"student": STUDENT, "run": RUN}
    steps = [
        {"student_id": STUDENT, "run_id": RUN, "step": s, "epoch": 1, "loss": 0.1, "reward_mean": 0.2 + 0.1 * s}
        for s in range(1, 5)
    ]
    root.write_table("training_steps", to_table(steps, TABLES["training_steps"]), part)
    evals = [
        {"student_id": STUDENT, "run_id": RUN, "step": s, "split": split, "n": 10, "correct": c, "accuracy": c / 10}
        for s in (0, 2, 4)
        for split, c in (("heldout", 3 + s), ("hard", 1 + s // 2))
    ]
    root.write_table("training_eval", to_table(evals, TABLES["training_eval"]), part)
    return root
