"""The schemas of the tables LLM-driven synthesis (issue 7) and skills (issue 8) write: the synthesis log, GLAN's
levels (`../shared/methods.md` §9) and the STAT skill tables (methods §7). `scoring.schemas` registers them with
the others in `TABLES`; the accepted synthesized problems share the `problems` columns and are declared there.
"""

from __future__ import annotations

import pyarrow as pa

# LLM-driven synthesis (issue 7). Every candidate a method produced and every filter's decision on it, kept or
# not, with the reason: nothing a model wrote is silently dropped.
SYNTHESIS_LOG_KEY = ("method", "round", "stage", "item_id")
SYNTHESIS_LOG = pa.schema(
    [
        ("method", pa.string()),  # scalequest | glan | socratic | restructure | stat_syn
        ("round", pa.int32()),  # 0 for one-shot methods; the Socratic round otherwise
        ("stage", pa.string()),  # the step or filter that decided, e.g. "parse", "language", "solvable"
        ("item_id", pa.string()),  # the candidate's id (a problem_id once it has question+answer)
        ("parent_id", pa.string()),
        ("kept", pa.bool_()),
        ("reason", pa.string()),
        ("text", pa.string()),  # the candidate (or raw completion), truncated to 2,000 characters
        ("model", pa.string()),  # the model that wrote the text this decision is about
        ("prompt_version", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("detail", pa.string()),  # JSON object: votes, scores, pass rates
    ]
)

# GLAN (methods §9): each level its own table so a user can inspect and edit it before the next level runs.
GLAN_DISCIPLINES = pa.schema(
    [("field", pa.string()), ("sub_field", pa.string()), ("discipline", pa.string()), ("source", pa.string())]
)
GLAN_SUBJECTS = pa.schema(
    [
        ("discipline", pa.string()),
        ("subject", pa.string()),
        ("level", pa.string()),
        ("subtopics", pa.list_(pa.string())),
        ("source", pa.string()),
    ]
)
GLAN_SYLLABUS = pa.schema(
    [
        ("discipline", pa.string()),
        ("subject", pa.string()),
        ("level", pa.string()),
        ("session_idx", pa.int32()),
        ("session_title", pa.string()),
        ("key_concepts", pa.list_(pa.string())),
        ("source", pa.string()),
    ]
)

# Skills (issue 8, methods §7 STAT).
SKILLS = pa.schema(
    [("skill_id", pa.string()), ("name", pa.string()), ("definition", pa.string()), ("source", pa.string())]
)
PROBLEM_SKILLS_KEY = ("problem_id", "skill_id")
PROBLEM_SKILLS = pa.schema(
    [("problem_id", pa.string()), ("skill_id", pa.string()), ("labeler", pa.string()), ("version", pa.string())]
)
# Per failed rollout, the skills the teacher says the attempt shows missing (STAT's Missing-Skill-Profile input).
SKILL_ATTRIBUTIONS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("sample_index", pa.int32()),
        ("skill_id", pa.string()),
        ("labeler", pa.string()),
        ("version", pa.string()),
    ]
)
SKILL_PROFILE = pa.schema(
    [
        ("student_id", pa.string()),
        ("student_revision", pa.string()),
        ("skill_id", pa.string()),
        ("n_problems", pa.int32()),
        ("pass_rate", pa.float64()),
        ("pass_lo", pa.float64()),
        ("pass_hi", pa.float64()),
        ("n_failures", pa.int32()),
        ("n_fail_attributed", pa.int32()),
        ("fail_share", pa.float64()),
        ("fail_share_lo", pa.float64()),
        ("fail_share_hi", pa.float64()),
        ("weight", pa.float64()),  # STAT-Sel: the sampling weight the curriculum gives this skill's problems
    ]
)
