"""Every table's schema, declared once (the synthesis and skills tables in `synthesis_schemas.py`, the supervision
tables in `supervision_schemas.py`), and the registry of tables by name. Data is cast to these before Parquet is
written."""

from __future__ import annotations

import pyarrow as pa

from engines.errors import ConfigError, did_you_mean
from scoring.supervision_schemas import PREFERENCE_PAIRS, SUPERVISION_SELECTION, SUPERVISION_TRACES
from scoring.synthesis_schemas import (
    GLAN_DISCIPLINES,
    GLAN_SUBJECTS,
    GLAN_SYLLABUS,
    PROBLEM_SKILLS,
    SKILL_ATTRIBUTIONS,
    SKILL_PROFILE,
    SKILLS,
    SYNTHESIS_LOG,
)

PROBLEMS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("source", pa.string()),
        ("family", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("solution", pa.string()),
        ("difficulty_knob", pa.int32()),
        ("source_ref", pa.string()),
        ("metadata", pa.string()),
        ("parent_id", pa.string()),
        ("generator_model", pa.string()),
        ("checks_passed", pa.string()),
    ]
)

REJECTS = pa.schema(
    [("stage", pa.string()), ("input_ref", pa.string()), ("reason", pa.string()), ("raw_text", pa.string())]
)

ROLLOUT_KEY = ("problem_id", "student_id", "student_revision", "sampling_hash", "sample_index")
ROLLOUTS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("sampling_hash", pa.string()),
        ("sample_index", pa.int32()),
        ("completion", pa.string()),
        ("extracted_answer", pa.string()),
        ("verdict", pa.string()),
        ("verdict_reason", pa.string()),
        ("verifier_version", pa.string()),
        ("verifier_rule", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("latency_s", pa.float64()),
    ]
)

# What grading reads of a rollout: everything but the texts, which are most of the bytes.
ROLLOUT_EVIDENCE_COLUMNS = (
    *ROLLOUT_KEY, "verifier_version", "verdict", "prompt_tokens", "completion_tokens", "latency_s",
)  # fmt: skip
AUDIT_KEY = (*ROLLOUT_KEY, "rule")
VERDICT_AUDIT = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("sampling_hash", pa.string()),
        ("sample_index", pa.int32()),
        ("rule", pa.string()),
        ("verdict", pa.string()),
        ("reason", pa.string()),
        ("extracted_answer", pa.string()),
    ]
)

DIFFICULTY_KEY = ("problem_id", "student_id", "student_revision", "sampling_hash", "verifier_version")
DIFFICULTY = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("sampling_hash", pa.string()),
        ("verifier_version", pa.string()),
        ("family", pa.string()),  # copied from `problems` so per-family queries need no join
        ("n", pa.int32()),
        ("k", pa.int32()),
        ("n_timeout", pa.int32()),
        ("n_error", pa.int32()),
        ("pass_rate", pa.float64()),
        ("wilson_lo", pa.float64()),
        ("wilson_hi", pa.float64()),
        ("jeffreys_lo", pa.float64()),
        ("jeffreys_hi", pa.float64()),
        ("beta_alpha", pa.float64()),
        ("beta_beta", pa.float64()),
        ("post_mean", pa.float64()),
        ("post_lo", pa.float64()),
        ("post_hi", pa.float64()),
        ("fresh_lo", pa.float64()),  # 90% posterior-predictive range of the pass rate in a fresh group of n
        ("fresh_hi", pa.float64()),
        ("learnability", pa.float64()),
        ("exp_abs_adv", pa.float64()),
        ("band", pa.string()),
        ("method", pa.string()),
        ("stop_reason", pa.string()),
        ("prior_alpha", pa.float64()),
        ("prior_beta", pa.float64()),
        ("mean_response_tokens", pa.float64()),
        ("tokens_spent", pa.int64()),
        ("seconds_spent", pa.float64()),
    ]
)

CURRICULUM = pa.schema(
    [
        ("student_id", pa.string()),
        ("strategy", pa.string()),
        ("position", pa.int32()),
        ("problem_id", pa.string()),
        ("shard", pa.string()),
        ("post_mean", pa.float64()),
    ]
)

CURRICULUM_EXCLUDED = pa.schema(
    [
        ("student_id", pa.string()),
        ("strategy", pa.string()),
        ("problem_id", pa.string()),
        ("reason", pa.string()),
        ("n", pa.int32()),
        ("k", pa.int32()),
    ]
)

SHARD = pa.schema(
    [
        ("position", pa.int32()),
        ("problem_id", pa.string()),
        ("source", pa.string()),
        ("family", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("difficulty_knob", pa.int32()),
        ("n", pa.int32()),
        ("k", pa.int32()),
        ("pass_rate", pa.float64()),
        ("post_mean", pa.float64()),
        ("post_lo", pa.float64()),
        ("post_hi", pa.float64()),
        ("difficulty", pa.float64()),
        ("stage", pa.int32()),
        ("category", pa.string()),
        ("weight", pa.float64()),
        ("token_budget", pa.int32()),
    ]
)

FILTER_DECISIONS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("sampling_hash", pa.string()),
        ("verifier_version", pa.string()),
        ("filter", pa.string()),
        ("kept", pa.bool_()),
        ("reason", pa.string()),
        ("n", pa.int32()),
        ("k", pa.int32()),
        ("pass_rate", pa.float64()),
    ]
)

IRT_ITEMS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("difficulty_b", pa.float64()),
        ("n_total", pa.int64()),
        ("k_total", pa.int64()),
        ("students", pa.int32()),
    ]
)

IRT_STUDENTS = pa.schema(
    [
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("ability_theta", pa.float64()),
        ("n_total", pa.int64()),
        ("k_total", pa.int64()),
        ("problems", pa.int32()),
    ]
)

STUDENT_REVISIONS = pa.schema(
    [
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("model", pa.string()),
        ("first_graded_at", pa.timestamp("us", tz="UTC")),
    ]
)

PREDICTIONS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("sampling_hash", pa.string()),
        ("verifier_version", pa.string()),
        ("predictor", pa.string()),
        ("p", pa.float64()),
        ("alpha", pa.float64()),
        ("beta", pa.float64()),
        ("lo", pa.float64()),
        ("hi", pa.float64()),
        ("screened_band", pa.string()),
    ]
)

PREDICTOR_RELIABILITY = pa.schema(
    [
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("bin_lo", pa.float64()),
        ("bin_hi", pa.float64()),
        ("problems", pa.int64()),
        ("mean_predicted", pa.float64()),
        ("observed_pass_rate", pa.float64()),
        ("coverage", pa.float64()),
    ]
)

DUPLICATES = pa.schema(
    [
        ("problem_id", pa.string()),
        ("cluster_id", pa.string()),
        ("kept_id", pa.string()),
        ("similarity", pa.float64()),
        ("method", pa.string()),
    ]
)

CONTAMINATION = pa.schema(
    [
        ("problem_id", pa.string()),
        ("benchmark", pa.string()),
        ("benchmark_item_id", pa.string()),
        ("score", pa.float64()),
        ("method", pa.string()),
        ("matched_text", pa.string()),
        # set on `judge` rows only (null on the other detectors' rows and on rows written before the judge)
        ("judge_verdict", pa.string()),
        ("judge_model", pa.string()),  # model_id@model_revision
        ("judge_prompt", pa.string()),  # prompt version, e.g. same_problem_v1
    ]
)
# Every (problem, benchmark item) pair the LLM judge was asked about: yes, no, or failed with its reason.
CONTAMINATION_JUDGEMENTS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("benchmark", pa.string()),
        ("benchmark_item_id", pa.string()),
        ("cosine", pa.float64()),
        ("verdict", pa.string()),
        ("reason", pa.string()),
        ("judge_model", pa.string()),
        ("judge_prompt", pa.string()),
    ]
)

# The trainer (`scoring/training/grpo.py`): per optimizer step, which curriculum positions each step consumed, and every
# sampled completion. The stored tables add the student and the run id (partitioned by both).
TRAINER_STEPS = pa.schema(
    [
        ("step", pa.int32()),
        ("epoch", pa.int32()),
        ("loss", pa.float64()),
        ("reward_mean", pa.float64()),
        ("reward_std", pa.float64()),
        ("correct", pa.int32()),
        ("rollouts", pa.int32()),
        ("completion_tokens_mean", pa.float64()),
        ("grad_norm", pa.float64()),
        ("learning_rate", pa.float64()),
        ("seconds", pa.float64()),
        ("cpu_seconds", pa.float64()),
    ]
)
TRAINER_CONSUMPTION = pa.schema(
    [("step", pa.int32()), ("epoch", pa.int32()), ("position", pa.int32()), ("problem_id", pa.string())]
)
TRAINER_ROLLOUTS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("position", pa.int32()),
        ("step", pa.int32()),
        ("sample_index", pa.int32()),
        ("completion", pa.string()),
        ("extracted_answer", pa.string()),
        ("correct", pa.bool_()),
        ("verdict", pa.string()),
        ("verdict_reason", pa.string()),
        ("verifier_version", pa.string()),
        ("verifier_rule", pa.string()),
        ("completion_tokens", pa.int32()),
        ("reward", pa.float64()),
    ]
)
# ADCL's re-grading inside a training run (methods §12): each answer the live policy gave at `step`, and each
# problem's re-estimate (chunk = the re-grading's number, initial_rank = its place in the starting easy→hard order).
TRAINER_REGRADES = pa.schema(
    [
        ("step", pa.int32()),
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("completion", pa.string()),
        ("extracted_answer", pa.string()),
        ("verdict", pa.string()),
        ("verdict_reason", pa.string()),
        ("verifier_version", pa.string()),
        ("verifier_rule", pa.string()),
        ("completion_tokens", pa.int32()),
    ]
)
TRAINER_REESTIMATES = pa.schema(
    [
        ("step", pa.int32()),
        ("chunk", pa.int32()),
        ("problem_id", pa.string()),
        ("initial_rank", pa.int32()),
        ("pass_rate", pa.float64()),
    ]
)
_RUN_COLUMNS = [("student_id", pa.string()), ("run_id", pa.string())]
TRAINING_STEPS = pa.schema([*_RUN_COLUMNS, *TRAINER_STEPS])
TRAINING_CONSUMPTION = pa.schema([*_RUN_COLUMNS, *TRAINER_CONSUMPTION])
# The `adcl_reestimates` table: TRAINER_REESTIMATES of a run plus the problem's difficulty before training
# (1 - posterior mean of the curriculum row) and after re-grading (1 - pass rate), methods §12's data columns.
ADCL_REESTIMATES = pa.schema(
    [
        *_RUN_COLUMNS,
        *TRAINER_REESTIMATES,
        ("initial_difficulty", pa.float64()),
        ("reestimated_difficulty", pa.float64()),
    ]
)
# Held-out accuracy of a training run's policy: step 0 is before any update (scoring/training/evaluation.py).
TRAINER_EVAL = pa.schema(
    [
        ("step", pa.int32()),
        ("split", pa.string()),
        ("n", pa.int32()),
        ("correct", pa.int32()),
        ("accuracy", pa.float64()),
        ("tokens", pa.float64()),
        ("seconds", pa.float64()),
    ]
)
TRAINING_EVAL = pa.schema([*_RUN_COLUMNS, *TRAINER_EVAL])
# One row per step per curriculum-ablation run (scoring/training/ablation.py); step 0 is before training.
ABLATION_RUNS = pa.schema(
    [
        ("method", pa.string()),
        ("arm", pa.string()),
        ("seed", pa.int64()),
        ("step", pa.int32()),
        ("reward_mean", pa.float64()),
        ("groups", pa.int32()),
        ("zero_variance_groups", pa.int32()),
        ("training_rollouts", pa.int64()),
        ("grading_rollouts", pa.int64()),
        ("total_rollouts", pa.int64()),
        ("heldout_accuracy", pa.float64()),
        ("hard_accuracy", pa.float64()),
        ("seconds", pa.float64()),
    ]
)

# GAIN-RL's angle concentration of a problem under one model (scoring/training/angles.py, methods §16): one row per
# (problem, model revision, signal version, prompt); reruns compute only the missing rows.
ANGLE_SIGNAL_KEY = ("problem_id", "model_revision", "signal_version", "prompt")
ANGLE_SIGNALS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("model_revision", pa.string()),
        ("signal_version", pa.string()),
        ("prompt", pa.string()),
        ("model", pa.string()),
        ("angle_score", pa.float64()),
        ("c_intra", pa.float64()),
        ("c_inter", pa.float64()),
        ("prefix_tokens", pa.int32()),
        ("question_tokens", pa.int32()),
    ]
)

# Accepted synthesized problems, one partition per method (`method=<name>`); `problems` unions them in.
SYNTHESIZED_PROBLEMS = pa.schema([*PROBLEMS, ("method", pa.string()), ("round", pa.int32())])

TABLES: dict[str, pa.Schema] = {
    "problems": PROBLEMS,
    "rejects": REJECTS,
    "rollouts": ROLLOUTS,
    "verdict_audit": VERDICT_AUDIT,
    "difficulty": DIFFICULTY,
    "curriculum": CURRICULUM,
    "curriculum_excluded": CURRICULUM_EXCLUDED,
    "band_filter": FILTER_DECISIONS,
    "student_revisions": STUDENT_REVISIONS,
    "predictions": PREDICTIONS,
    "predictor_reliability": PREDICTOR_RELIABILITY,
    "irt_items": IRT_ITEMS,
    "irt_students": IRT_STUDENTS,
    "duplicates": DUPLICATES,
    "contamination": CONTAMINATION,
    "contamination_judgements": CONTAMINATION_JUDGEMENTS,
    "training_steps": TRAINING_STEPS,
    "training_consumption": TRAINING_CONSUMPTION,
    "training_eval": TRAINING_EVAL,
    "adcl_reestimates": ADCL_REESTIMATES,
    "angle_signals": ANGLE_SIGNALS,
    "ablation_runs": ABLATION_RUNS,
    "synthesis_log": SYNTHESIS_LOG,
    "synthesized_problems": SYNTHESIZED_PROBLEMS,
    "glan_disciplines": GLAN_DISCIPLINES,
    "glan_subjects": GLAN_SUBJECTS,
    "glan_syllabus": GLAN_SYLLABUS,
    "skills": SKILLS,
    "problem_skills": PROBLEM_SKILLS,
    "skill_attributions": SKILL_ATTRIBUTIONS,
    "skill_profile": SKILL_PROFILE,
    "supervision_traces": SUPERVISION_TRACES,
    "supervision_selection": SUPERVISION_SELECTION,
    "preference_pairs": PREFERENCE_PAIRS,
}


# Tables that grow by `DataRoot.upsert_table`: their key, by which reads return the rows (file order is not
# stable across appends and compactions, and outputs must not depend on it).
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "rollouts": ROLLOUT_KEY,
    "verdict_audit": AUDIT_KEY,
    "student_revisions": ("student_id", "student_revision"),
    "angle_signals": ANGLE_SIGNAL_KEY,
}


def schema_for(table: str) -> pa.Schema:
    try:
        return TABLES[table]
    except KeyError:
        raise ConfigError(f"unknown table {table!r};" + did_you_mean(table, TABLES)) from None


def to_table(rows: list[dict[str, object]], schema: pa.Schema) -> pa.Table:
    """Rows → a table of exactly `schema` (missing columns are null, extra keys are an error)."""
    names = set(schema.names)
    for row in rows[:1]:
        extra = set(row) - names
        if extra:
            raise ValueError(f"columns {sorted(extra)} are not in the schema {schema.names}")
    return pa.Table.from_pylist(rows, schema=schema)
