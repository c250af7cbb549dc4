"""Skills (methods §7, STAT; He et al., arXiv 2510.10023): the config, the missing-skill profile's arithmetic,
STAT-Sel weights, and the readers the curriculum uses (`problem_skill_weights`, `main_skill`, `skill_balance`).

The stages that call the teacher live in `scoring/stages/skills.py`; the prompts and parsers in `synthesis/skills.py`.

Which labels count. A problem can carry labels from several labelers: its procedural family ("family"), its GLAN
key concepts ("glan"), a STAT-Syn target skill ("stat_syn") and the teacher (labeler = the teacher's model id).
Known labels need no model and are right by construction, so wherever a problem has them they are its labels;
teacher labels count only for problems without known ones (`effective_labels`). Rows of `problem_skills` are
written in label order, so a problem's first effective label is its main skill.

STAT-Sel weight (methods §7 step 5: "skill frequency in the set ∝ its frequency in the profile"). With f_s skill s's
frequency among the failure attributions (each weighted by its problem's failed rollouts, see `profile_rows`),
normalized so Σ f_s = 1 over the skills that have graded problems, K the number of those skills, and
λ = `sel_strength`:

    weight_s = (1 − λ) + λ · K · f_s

λ = 1 is STAT's pure proportional selection (skills the teacher never named get weight 0), λ = 0 is uniform; in
between every skill keeps a floor of 1 − λ. The weights average 1 over the K skills, so the curriculum's total
weight is unchanged. A problem's weight is the largest weight among its effective skills: a problem that
exercises any missing skill is over-represented (the mean would dilute a missing skill by its problem's others).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scoring.grading.estimators import wilson_interval
from scoring.storage import DataRoot
from synthesis.skills import KNOWN_LABELERS

INTERVAL_LEVEL = 0.90  # the pipeline's interval level for pass rates (scoring/grading/difficulty.py)


class SkillsConfig(BaseModel):
    """The `skills` section of the project config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="label skills and build the student's skill profile")
    vocabulary: str | None = Field(None, description="a YAML skill vocabulary file (ids, names, definitions)")
    propose_from: int = Field(
        24, ge=0, description="problems without known skills shown to the teacher to propose a vocabulary"
    )
    max_skills: int = Field(24, ge=1, description="vocabulary size cap (known skills always stay)")
    labels_per_problem: tuple[int, int] = Field((1, 5), description="min and max skill ids per problem")
    label_known: bool = Field(
        False, description="also ask the teacher to label problems that have family/GLAN labels (to measure agreement)"
    )
    failures_attributed: int = Field(32, ge=0, description="failed rollouts the teacher attributes per run")
    attribution_max: int = Field(3, ge=1, le=5, description="missing skills per failure (paper: 2-3 in practice)")
    attribute_from: Literal["problem", "vocabulary"] = Field(
        "problem",
        description=(
            "skills the teacher may name for a failure: `problem` = the failed problem's own labels (its Skill-Map "
            "entry; the whole vocabulary when it has none), `vocabulary` = every skill, as the paper's GPT-4o-mini "
            "teacher is given"
        ),
    )
    attempt_chars: int = Field(1200, ge=100, description="characters of a failed attempt shown to the teacher")
    sel_strength: float = Field(
        0.5, ge=0.0, le=1.0, description="STAT-Sel: 0 = uniform weights, 1 = weights proportional to the profile"
    )
    max_share: float = Field(0.5, gt=0.0, le=1.0, description="asset check: warn when one skill exceeds this share")
    syn_skills: int = Field(3, ge=0, description="STAT-Syn: missing skills (top of the profile) to write problems for")
    syn_per_skill: int = Field(2, ge=0, le=8, description="STAT-Syn: new problems per missing skill (paper: 2)")
    syn_references: int = Field(3, ge=1, le=8, description="STAT-Syn: reference problems shown (paper: 3)")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="teacher sampling for labels and attributions")
    max_tokens: int = Field(64, ge=16, description="teacher tokens for one label or attribution answer")
    propose_max_tokens: int = Field(384, ge=32)
    syn_temperature: float = Field(0.7, ge=0.0, le=2.0, description="STAT-Syn question writing")
    syn_max_tokens: int = Field(320, ge=32)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SkillsConfig:
        lo, hi = self.labels_per_problem
        if not 1 <= lo <= hi:
            raise ValueError(f"labels_per_problem must satisfy 1 <= min <= max; got {self.labels_per_problem}")
        return self


# -- labels -----------------------------------------------------------------------------------------------------


def effective_labels(problem_skills: pa.Table) -> dict[str, list[str]]:
    """problem id → its skill ids in label order: its known labels (family, GLAN, STAT-Syn) when it has any,
    else its teacher labels."""
    known, teacher = labels_by_labeler(problem_skills)
    return {pid: known.get(pid) or teacher[pid] for pid in sorted(known.keys() | teacher.keys())}


def labels_by_labeler(problem_skills: pa.Table) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(known labels, teacher labels): problem id → skill ids in label order, for each kind of labeler."""
    known: dict[str, list[str]] = {}
    teacher: dict[str, list[str]] = {}
    for row in problem_skills.select(["problem_id", "skill_id", "labeler"]).to_pylist():
        into = known if row["labeler"] in KNOWN_LABELERS else teacher
        skills = into.setdefault(row["problem_id"], [])
        if row["skill_id"] not in skills:
            skills.append(row["skill_id"])
    return known, teacher


def label_agreement(problem_skills: pa.Table) -> dict[str, float | int]:
    """How the teacher's labels agree with the known ones on problems that have both (`skills.label_known`):
    `problems` compared; shares where the teacher's labels include the known main skill (`main_included`), start
    with it (`main_first`), or share any skill with the known labels (`any_overlap`)."""
    known, teacher = labels_by_labeler(problem_skills)
    both = sorted(known.keys() & teacher.keys())
    if not both:
        return {"problems": 0}
    n = len(both)
    return {
        "problems": n,
        "main_included": round(sum(known[p][0] in teacher[p] for p in both) / n, 4),
        "main_first": round(sum(known[p][0] == teacher[p][0] for p in both) / n, 4),
        "any_overlap": round(sum(bool(set(known[p]) & set(teacher[p])) for p in both) / n, 4),
    }


def main_skill(root: DataRoot) -> dict[str, str]:
    """problem id → its main skill (first effective label): the `categories` of the skill_balanced curriculum."""
    return {pid: skills[0] for pid, skills in effective_labels(root.read_table("problem_skills")).items() if skills}


def problem_skill_weights(root: DataRoot, student_id: str) -> dict[str, float]:
    """problem id → STAT-Sel sampling weight (the largest weight among its skills) from the student's profile;
    problems without labels, or a student without a profile, are absent (the curriculum uses 1.0)."""
    profile = root.read_table("skill_profile", {"student": student_id})
    weights = {r["skill_id"]: r["weight"] for r in profile.to_pylist() if r["weight"] is not None}
    if not weights:
        return {}
    out = {}
    for pid, skills in effective_labels(root.read_table("problem_skills")).items():
        known = [weights[s] for s in skills if s in weights]
        if known:
            out[pid] = round(max(known), 12)
    return out


# -- the profile -------------------------------------------------------------------------------------------------


def sel_weights(attributions: Mapping[str, float], active: Iterable[str], strength: float) -> dict[str, float]:
    """STAT-Sel weight per active skill: (1 − λ) + λ·K·f_s (module docstring); uniform 1.0 when nothing was
    attributed yet."""
    active = sorted(set(active))
    total = sum(attributions.get(s, 0) for s in active)
    if not active or total == 0:
        return dict.fromkeys(active, 1.0)
    k = len(active)
    return {s: round((1 - strength) + strength * k * attributions.get(s, 0) / total, 12) for s in active}


def choose_failures(failed: Sequence[Mapping[str, object]], budget: int, seed: int) -> list[Mapping[str, object]]:
    """Up to `budget` failed rollouts spread over problems: one per problem (problems in a seeded order) before
    any problem gets a second — STAT attributes one answer per difficult question (methods §7 stage 2)."""
    by_problem: dict[str, list[Mapping[str, object]]] = {}
    for row in failed:
        by_problem.setdefault(str(row["problem_id"]), []).append(row)
    rng = random.Random(f"{seed}:failures")
    order = sorted(by_problem)
    rng.shuffle(order)
    for pid in order:
        by_problem[pid].sort(key=lambda r: int(r["sample_index"]))  # type: ignore[call-overload]
        rng.shuffle(by_problem[pid])
    chosen: list[Mapping[str, object]] = []
    depth = 0
    while len(chosen) < budget and any(len(by_problem[p]) > depth for p in order):
        chosen += [by_problem[p][depth] for p in order if len(by_problem[p]) > depth][: budget - len(chosen)]
        depth += 1
    return chosen


@dataclass(frozen=True, slots=True)
class Attribution:
    """One failed rollout and the skills the teacher said it shows missing ([] when the answer was rejected)."""

    problem_id: str
    sample_index: int
    skills: tuple[str, ...]


def profile_rows(
    *,
    student_id: str,
    student_revision: str,
    labels: Mapping[str, list[str]],
    grades: Iterable[Mapping[str, object]],
    attributions: Iterable[Attribution],
    strength: float,
) -> list[dict[str, object]]:
    """The `skill_profile` rows: per skill, the pooled pass rate over its graded problems (Σk/Σn, Wilson), its
    failed rollouts, the failures the teacher attributed to it (`n_fail_attributed`), its `fail_share` and the
    STAT-Sel weight.

    `fail_share` estimates the share of the student's failed rollouts that show the skill missing. The teacher
    reads a few failures per problem (`choose_failures` spreads them over problems, as STAT reads one answer per
    difficult question), so each problem's accepted attributions stand for all its failed rollouts: an attribution
    weighs (the problem's failed rollouts) / (its accepted attributions). Without the weights a problem failed
    8 times out of 8 would count as much as one failed once. The Wilson interval uses the number of attributions."""
    n_problems, n_total, k_total, failed_of = _pooled_grades(grades, labels)
    shares, named, attributed = _failure_shares(attributions, failed_of)
    weights = sel_weights(shares, n_problems, strength)
    rows = []
    for skill in sorted(n_problems.keys() | named.keys()):
        n, k, hits, share = n_total.get(skill, 0), k_total.get(skill, 0), named.get(skill, 0), shares.get(skill, 0.0)
        pass_lo, pass_hi = wilson_interval(k, n, INTERVAL_LEVEL)
        share_lo, share_hi = wilson_interval(share * attributed, attributed, INTERVAL_LEVEL)  # type: ignore[arg-type]
        rows.append(
            {
                "student_id": student_id,
                "student_revision": student_revision,
                "skill_id": skill,
                "n_problems": n_problems.get(skill, 0),
                "pass_rate": k / n if n else None,
                "pass_lo": pass_lo if n else None,
                "pass_hi": pass_hi if n else None,
                "n_failures": n - k,
                "n_fail_attributed": hits,
                "fail_share": round(share, 12),
                "fail_share_lo": share_lo if attributed else None,
                "fail_share_hi": share_hi if attributed else None,
                "weight": weights.get(skill),
            }
        )
    return rows


def _pooled_grades(
    grades: Iterable[Mapping[str, object]], labels: Mapping[str, list[str]]
) -> tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]:
    """Per skill: graded problems, Σn and Σk over them; and per graded problem its failed rollouts."""
    n_problems: dict[str, int] = {}
    n_total: dict[str, int] = {}
    k_total: dict[str, int] = {}
    failed_of: dict[str, int] = {}
    for grade in grades:
        n, k = int(grade["n"]), int(grade["k"])  # type: ignore[call-overload]
        if n == 0:
            continue
        failed_of[str(grade["problem_id"])] = n - k
        for skill in labels.get(str(grade["problem_id"]), []):
            n_problems[skill] = n_problems.get(skill, 0) + 1
            n_total[skill] = n_total.get(skill, 0) + n
            k_total[skill] = k_total.get(skill, 0) + k
    return n_problems, n_total, k_total, failed_of


def _failure_shares(
    attributions: Iterable[Attribution], failed_of: Mapping[str, int]
) -> tuple[dict[str, float], dict[str, int], int]:
    """Per skill: its weighted share of the failures and the accepted attributions naming it; and how many
    attributions were accepted (see `profile_rows` for the weights)."""
    accepted = [item for item in attributions if item.skills]
    per_problem = Counter(item.problem_id for item in accepted)
    named: dict[str, int] = {}
    weighted: dict[str, float] = {}
    total_weight = 0.0
    for item in accepted:
        weight = max(failed_of.get(item.problem_id, 1), 1) / per_problem[item.problem_id]
        total_weight += weight
        for skill in set(item.skills):
            named[skill] = named.get(skill, 0) + 1
            weighted[skill] = weighted.get(skill, 0.0) + weight
    shares = {skill: w / total_weight for skill, w in weighted.items()} if total_weight else {}
    return shares, named, len(accepted)


# -- balance (the asset check's logic) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkillBalance:
    passed: bool
    shares: dict[str, float]  # main skill → share of the curriculum's (weighted) problems, largest first
    message: str


def skill_balance(root: DataRoot, student_id: str | None, curriculum: pa.Table, max_share: float) -> SkillBalance:
    """Does one skill dominate the curriculum? Each problem counts for its main skill (an unlabeled problem for
    its family, as the skill_balanced curriculum does, when the table has a `family` column), weighted by its
    `weight` column when the table has one (a shard table or the planner's output). `curriculum` may also be the
    `curriculum` table, whose rows are narrowed to `student_id`. Fails when the largest share exceeds `max_share`."""
    if student_id is not None and "student_id" in curriculum.column_names:
        curriculum = curriculum.filter(pc.equal(curriculum.column("student_id"), student_id))
    problem_ids = curriculum.column("problem_id").to_pylist()
    categories = main_skill(root)
    if "family" in curriculum.column_names:
        families = curriculum.column("family").to_pylist()
        categories = {
            pid: categories.get(pid) or f"family:{fam}" for pid, fam in zip(problem_ids, families, strict=True)
        }
    weights = curriculum.column("weight").to_pylist() if "weight" in curriculum.column_names else None
    return balance_of(problem_ids, weights, categories, max_share)


def balance_of(
    problem_ids: list[str], weights: list[float | None] | None, main_skills: Mapping[str, str], max_share: float
) -> SkillBalance:
    """`skill_balance` on plain lists (pure)."""
    totals: dict[str, float] = {}
    for index, pid in enumerate(problem_ids):
        weight = 1.0 if weights is None or weights[index] is None else float(weights[index])  # type: ignore[arg-type]
        skill = main_skills.get(pid, "(unlabeled)")
        totals[skill] = totals.get(skill, 0.0) + weight
    grand = sum(totals.values())
    if not problem_ids or grand <= 0 or not math.isfinite(grand):
        return SkillBalance(True, {}, "empty curriculum: nothing to balance")
    shares = {s: round(v / grand, 6) for s, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))}
    top, share = next(iter(shares.items()))
    if share > max_share:
        return SkillBalance(False, shares, f"skill {top!r} holds {share:.0%} of the curriculum (limit {max_share:.0%})")
    return SkillBalance(True, shares, f"largest skill {top!r} holds {share:.0%} (limit {max_share:.0%})")
