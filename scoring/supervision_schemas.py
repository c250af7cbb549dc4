"""The schemas of the supervision tables (methods §14, issue 26): teacher reasoning traces with their verdict,
the student's difficulty and a step-wise error estimate; each selection policy's decision on every trace; and
preference pairs from the student's verified rollouts. `scoring.schemas` registers them in `TABLES`.
"""

from __future__ import annotations

import pyarrow as pa

# The difficulty of a problem for the student, copied into a trace or pair row when it is written (from the
# student's current `difficulty` rows: its model revision, sampling config and verifier).
_STUDENT_DIFFICULTY = [
    ("student_revision", pa.string()),
    ("n", pa.int32()),
    ("k", pa.int32()),
    ("pass_rate", pa.float64()),
    ("post_mean", pa.float64()),
]

# One reasoning trace of an engine role (teacher by default) per row; partition `student=<id>`.
SUPERVISION_TRACE_KEY = ("problem_id", "role", "model_id", "model_revision", "sampling_hash", "sample_index")
SUPERVISION_TRACES = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("role", pa.string()),  # the engine role that wrote the trace: teacher | generator | student
        ("model_id", pa.string()),
        ("model_revision", pa.string()),
        ("sampling_hash", pa.string()),  # of the trace sampling config, prompt version included
        ("prompt_version", pa.string()),
        ("sample_index", pa.int32()),
        ("completion", pa.string()),  # the trace
        ("extracted_answer", pa.string()),
        ("answer_key", pa.string()),  # the final answer normalized for agreement between samples
        ("verdict", pa.string()),  # the project's Verifier on the final answer
        ("verdict_reason", pa.string()),
        ("verifier_version", pa.string()),
        ("finish_reason", pa.string()),
        ("completion_tokens", pa.int32()),
        ("trace_chars", pa.int32()),
        ("n_steps", pa.int32()),
        ("n_checked_steps", pa.int32()),  # steps with at least one claim the step checker could check
        ("n_error_steps", pa.int32()),
        ("n_claims", pa.int32()),
        ("n_wrong_claims", pa.int32()),
        ("step_error_rate", pa.float64()),  # n_error_steps / n_steps
        ("first_step_error", pa.string()),
        ("step_method", pa.string()),  # the step checker's versioned name, e.g. arith_steps_v1
        ("step_truncated", pa.bool_()),
        *_STUDENT_DIFFICULTY,
    ]
)

# Every trace's fate under one selection policy; partition `student=<id>/selection=<policy>`.
SUPERVISION_SELECTION = pa.schema(
    [
        ("student_id", pa.string()),
        ("policy", pa.string()),  # versioned, e.g. hard_first_v1
        ("position", pa.int32()),  # order in the export; null when dropped
        ("kept", pa.bool_()),
        ("reason", pa.string()),  # why dropped ("" when kept)
        ("problem_id", pa.string()),
        ("role", pa.string()),
        ("model_id", pa.string()),
        ("sample_index", pa.int32()),
        ("verdict", pa.string()),
        ("step_error_rate", pa.float64()),
        ("pass_rate", pa.float64()),
        ("post_mean", pa.float64()),
    ]
)

# Chosen/rejected pairs of one problem: the student's own verified rollouts (kind `student_vs_student`), or a
# teacher trace verified correct against a student rollout verified wrong (`teacher_vs_student`); partition
# `student=<id>`. The rejected side is always a student rollout (its sampling hash and sample index).
PREFERENCE_PAIR_KEY = (
    "problem_id", "student_revision", "sampling_hash", "method", "chosen_role", "chosen_revision", "chosen_index",
    "rejected_index",
)  # fmt: skip
PREFERENCE_PAIRS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("sampling_hash", pa.string()),  # of the student's rollouts (the rejected side)
        ("verifier_version", pa.string()),
        ("method", pa.string()),  # the pairing rule, versioned
        ("kind", pa.string()),  # student_vs_student | teacher_vs_student
        ("chosen_role", pa.string()),  # the engine role that wrote the chosen text: student | teacher | generator
        ("chosen_revision", pa.string()),  # that model's revision (the student's for its own samples)
        ("chosen_index", pa.int32()),
        ("rejected_index", pa.int32()),
        ("chosen", pa.string()),
        ("rejected", pa.string()),
        ("chosen_verdict", pa.string()),
        ("rejected_verdict", pa.string()),
        ("reason", pa.string()),  # why each side was chosen: the verdicts and the checkers' reasons
        *_STUDENT_DIFFICULTY,
    ]
)
