"""Skill stages (methods §7 STAT, He et al., arXiv 2510.10023; §9 GLAN key concepts): vocabulary → problem labels
→ the student's missing-skill profile (with STAT-Sel weights) → STAT-Syn problems for its weakest skills.

Each stage reads the data root, calls the teacher (`roles.teacher`) through the cached engine with seeded requests,
writes its tables whole, and returns a `StageSummary`; a rerun with the same config makes zero model calls and
writes the same tables. Malformed teacher output becomes `rejects` rows (origin `skills` for labels,
`skills-vocabulary` for proposals, `skills-profile-<student>` for attributions). STAT-Syn, the stage that writes
problems for the weakest skills, is `scoring.stages.stat_syn`. The curriculum reads the results through
`scoring.grading.skills.main_skill` and `problem_skill_weights`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path

import pyarrow as pa

from engines import ChatRequest, Engine, SamplingParams
from engines.config import expected_revision
from scoring.config import ProjectConfig
from scoring.grading.skills import Attribution, choose_failures, effective_labels, label_agreement, profile_rows
from scoring.schemas import REJECTS, to_table
from scoring.stages.difficulty import current_grades
from scoring.stages.problems import load_pool, load_problems
from scoring.stages.report import CostMeter, StageSummary, markdown_table, reasons_markdown, student_partition
from scoring.stages.roles import EngineRoles
from scoring.stages.rollouts import student_rollouts
from scoring.storage import DataRoot
from scoring.synthesis_schemas import PROBLEM_SKILLS, SKILL_ATTRIBUTIONS, SKILL_PROFILE, SKILLS
from synthesis.families import FAMILIES
from synthesis.problem import Problem
from synthesis.skill_vocabulary import (
    Skill,
    Vocabulary,
    family_skills,
    glan_concept_skills,
    glan_concepts,
    load_vocabulary_yaml,
)
from synthesis.skills import (
    FAMILY_LABEL_VERSION,
    GLAN_LABEL_VERSION,
    LABEL_VERSION,
    STAT_SYN_LABEL_VERSION,
    attribution_messages,
    label_messages,
    offered_skills,
    parse_missing_skills,
    parse_proposal,
    parse_skill_ids,
    prompt_versions,
    proposal_messages,
    shuffled,
)
from synthesis.structured import ParseError

PROPOSE_BATCH = 4  # problems per proposal prompt: keeps the prompt inside a 1,024-token context
FAILED_VERDICTS = ("wrong", "unparseable")  # timeout/error say nothing about the student (design.md, Verdicts)
STAT_SYN = "stat_syn"  # the method (and problem source) of STAT-Syn problems, `scoring.stages.stat_syn`


def known_labels(problem: Problem, vocab: Vocabulary) -> list[tuple[str, str, str]]:
    """(skill id, labeler, version) of the labels a problem carries without a model call: its procedural
    family's tags, its GLAN key concepts, its STAT-Syn target skill — each resolved in `vocab`, main first."""
    found: list[tuple[str, str, str]] = []
    if problem.family in FAMILIES:
        found += [(s, "family", FAMILY_LABEL_VERSION) for s in FAMILIES.get(problem.family).skill_ids()]
    found += [(c, "glan", GLAN_LABEL_VERSION) for c in glan_concepts(problem.metadata)]
    target = _metadata(problem).get("target_skill") if problem.source == STAT_SYN else None
    if isinstance(target, str):
        found.append((target, "stat_syn", STAT_SYN_LABEL_VERSION))
    out: list[tuple[str, str, str]] = []
    for label, labeler, version in found:
        skill_id = vocab.resolve(label)
        if skill_id is not None and skill_id not in [s for s, _, _ in out]:
            out.append((skill_id, labeler, version))
    return out


def _metadata(problem: Problem) -> dict[str, object]:
    try:
        meta = json.loads(problem.metadata or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def read_vocabulary(root: DataRoot) -> Vocabulary:
    """The `skills` table as a `Vocabulary`."""
    return Vocabulary(Skill(**row) for row in root.read_table("skills").to_pylist())


def _reject(stage: str, ref: str, reason: str, raw: str) -> dict[str, object]:
    return {"stage": stage, "input_ref": ref, "reason": reason, "raw_text": raw[:2000]}


def _reason_kind(reason: object) -> str:
    """Group "unknown skill id 'x'" reasons by kind in summaries (the rows keep the id)."""
    text = str(reason)
    return "unknown skill id" if text.startswith("unknown skill id") else text


# -- stage 1: the vocabulary --------------------------------------------------------------------------------------


def build_skill_vocabulary(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """The `skills` table: the user's YAML vocabulary ∪ the pool's families' skills ∪ GLAN key concepts ∪ skills
    the teacher proposes from a seeded sample of the problems that have no known skills (STAT step 1, methods §7;
    no model call when every problem has known skills or `propose_from` is 0), deduplicated by normalized name.
    Known skills always stay; proposals fill the vocabulary up to `max_skills`."""
    sk = config.skills
    meter = CostMeter()
    vocab = Vocabulary()
    counts: Counter[str] = Counter()

    def add(skills: Sequence[Skill], source: str) -> None:
        for skill in skills:
            size = len(vocab)
            vocab.add(skill)
            counts[source] += len(vocab) - size

    if sk.vocabulary:
        path = Path(sk.vocabulary)
        add(load_vocabulary_yaml(path if path.is_absolute() else Path(config.base_dir) / path), "user")
    unlabeled = []
    for problem in load_pool(root):
        if problem.family in FAMILIES:
            add(family_skills(FAMILIES.get(problem.family).skill_ids(), problem.family), "family")
        concepts = glan_concept_skills(problem.metadata)
        add(concepts, "glan")
        if problem.family not in FAMILIES and not concepts and problem.source != STAT_SYN:
            unlabeled.append(problem)
    chosen = random.Random(f"{sk.seed}:propose").sample(unlabeled, min(sk.propose_from, len(unlabeled)))
    rejects: list[dict[str, object]] = []
    if chosen and len(vocab) < sk.max_skills:
        meter.watch(roles.teacher)
        for ref, proposed in _propose(roles.teacher, chosen, config, rejects, progress):
            counts["teacher_proposed"] += len(proposed)
            for skill in proposed:
                if len(vocab) >= sk.max_skills:
                    rejects.append(_reject("skills_propose", ref, f"vocabulary full ({sk.max_skills})", skill.name))
                else:
                    add([skill], "teacher_kept")
    table = to_table([{f.name: getattr(s, f.name) for f in fields(Skill)} for s in vocab], SKILLS)
    path = root.write_table("skills", table)
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": "skills-vocabulary"})
    counts |= {"skills": len(vocab), "rejected": len(rejects), "unlabeled_problems": len(unlabeled)}
    figures = meter.figures() | {"prompt_version": prompt_versions("skills_propose")}
    markdown = {
        "reject_reasons": reasons_markdown(Counter(str(r["reason"]) for r in rejects)),
        "preview": markdown_table(table.to_pylist()[:12], ["skill_id", "name", "source", "definition"]),
    }
    return StageSummary(table, dict(counts), figures, path=path, markdown=markdown)


def _propose(
    teacher: Engine, chosen: list[Problem], config: ProjectConfig, rejects: list[dict[str, object]], progress: bool
) -> list[tuple[str, list[Skill]]]:
    """The teacher's proposals, one call per batch of `PROPOSE_BATCH` problems: (batch ref, parsed skills)."""
    sk = config.skills
    batches = [chosen[i : i + PROPOSE_BATCH] for i in range(0, len(chosen), PROPOSE_BATCH)]
    sampling = SamplingParams(temperature=sk.temperature, max_tokens=sk.propose_max_tokens, seed=sk.seed)
    requests = [ChatRequest.of(proposal_messages([p.question for p in b], sk.max_skills), sampling) for b in batches]
    out = []
    for batch, group in zip(batches, teacher.generate(requests, progress=progress, desc="proposing"), strict=True):
        ref, completion = ",".join(p.problem_id[:16] for p in batch), group[0]
        if not completion.ok:
            rejects.append(_reject("skills_propose", ref, f"engine: {completion.error}", ""))
            continue
        try:
            skills, rejected = parse_proposal(completion.text, sk.max_skills)
        except ParseError as exc:
            rejects.append(_reject("skills_propose", ref, exc.reason, completion.text))
            continue
        rejects += [_reject("skills_propose", ref, why, raw) for raw, why in rejected]
        out.append((ref, skills))
    return out


# -- stage 2: labels ----------------------------------------------------------------------------------------------


def build_problem_skills(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """The `problem_skills` table: known labels (family, GLAN, STAT-Syn) and, for problems without them (and for
    all problems when `label_known`), 1–5 teacher labels constrained to the vocabulary (labeler = the teacher's
    model id, version `skills_teacher_v1`). Rejected labels and completions go to `rejects` (stage `skills_label`).
    Rows are in label order, main skill first."""
    sk = config.skills
    meter = CostMeter()
    vocab = read_vocabulary(root)
    rows: list[dict[str, object]] = []
    to_label: list[Problem] = []
    counts: Counter[str] = Counter()
    for problem in load_pool(root):
        known = known_labels(problem, vocab)
        rows += [{"problem_id": problem.problem_id, "skill_id": s, "labeler": lb, "version": v} for s, lb, v in known]
        counts["problems"] += 1
        counts["known_labeled"] += bool(known)
        if len(vocab) and (not known or sk.label_known):
            to_label.append(problem)
    rejects: list[dict[str, object]] = []
    if to_label:
        meter.watch(roles.teacher)
        labeled = _teacher_labels(roles.teacher, to_label, vocab, config, rejects, progress)
        counts |= {"teacher_requested": len(to_label), "teacher_accepted": len(labeled)}
        for pid, skills in labeled:
            rows += [
                {"problem_id": pid, "skill_id": s, "labeler": roles.teacher.model_id, "version": LABEL_VERSION}
                for s in skills
            ]
    table = to_table(rows, PROBLEM_SKILLS)
    path = root.write_table("problem_skills", table)
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": "skills"})
    counts |= {"vocabulary": len(vocab), "labels": table.num_rows, "labels_rejected": len(rejects)}
    figures = meter.figures() | {f"agreement_{k}": v for k, v in label_agreement(table).items()}
    if not len(vocab):
        figures["status"] = "empty vocabulary: materialize skill_vocabulary (build_skill_vocabulary) first"
    figures["prompt_version"] = prompt_versions("skills_label")
    markdown = {
        "reject_reasons": reasons_markdown(Counter(_reason_kind(r["reason"]) for r in rejects)),
        "preview": _labels_preview(table),
    }
    return StageSummary(table, dict(counts), figures, path=path, markdown=markdown)


def _teacher_labels(
    teacher: Engine,
    problems: list[Problem],
    vocab: Vocabulary,
    config: ProjectConfig,
    rejects: list[dict[str, object]],
    progress: bool,
) -> list[tuple[str, tuple[str, ...]]]:
    """(problem id, accepted skill ids) for each problem whose labeling completion was accepted."""
    sk = config.skills
    lo, hi = sk.labels_per_problem
    skills = list(vocab)
    sampling = SamplingParams(temperature=sk.temperature, max_tokens=sk.max_tokens, seed=sk.seed)
    requests = [
        ChatRequest.of(label_messages(p.question, shuffled(skills, f"{sk.seed}:{p.problem_id}"), hi), sampling)
        for p in problems
    ]
    out = []
    for problem, group in zip(problems, teacher.generate(requests, progress=progress, desc="labeling"), strict=True):
        completion, ref = group[0], problem.problem_id
        if not completion.ok:
            rejects.append(_reject("skills_label", ref, f"engine: {completion.error}", ""))
            continue
        parsed = parse_skill_ids(completion.text, vocab, min_labels=lo, max_labels=hi)
        rejects += [_reject("skills_label", f"{ref}#{raw}", why, completion.text) for raw, why in parsed.rejected]
        if parsed.ok:
            out.append((ref, parsed.accepted))
        else:
            rejects.append(_reject("skills_label", ref, str(parsed.error), completion.text))
    return out


def _labels_preview(table: pa.Table) -> str:
    by_problem: dict[str, dict[str, list[str]]] = {}
    for row in table.to_pylist():
        by_problem.setdefault(row["problem_id"], {}).setdefault(row["labeler"], []).append(row["skill_id"])
    rows = [
        {"problem_id": pid[:12], **{lb: ", ".join(s) for lb, s in labels.items()}}
        for pid, labels in list(by_problem.items())[:5]
    ]
    return markdown_table(rows, ["problem_id", *sorted({k for r in rows for k in r} - {"problem_id"})])


# -- stage 3: the missing-skill profile ---------------------------------------------------------------------------


def build_skill_profile(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """The student's `skill_attributions` and `skill_profile` (partition `student=<id>`): per skill the pass rate
    over its graded problems, and — STAT's Missing-Skill-Profile (methods §7 stage 2) — the share of failed
    rollouts (up to `failures_attributed`, seeded) whose attempt the teacher says shows the skill missing, with
    Wilson intervals and the STAT-Sel weight (`scoring.grading.skills`)."""
    sk = config.skills
    meter = CostMeter()
    part = student_partition(config)
    revision = expected_revision(config.student.engine, root.models_dir)
    vocab = read_vocabulary(root)
    problems = {p.problem_id: p for p in load_problems(root)}
    rollouts = student_rollouts(config, root, revision).to_pylist()
    failed = [r for r in rollouts if r["verdict"] in FAILED_VERDICTS and r["problem_id"] in problems]
    chosen = choose_failures(failed, sk.failures_attributed, sk.seed) if len(vocab) else []
    rejects: list[dict[str, object]] = []
    attributions: list[Attribution] = []
    labels = effective_labels(root.read_table("problem_skills"))
    if chosen:
        meter.watch(roles.teacher)
        attributions = _attribute(roles.teacher, chosen, problems, vocab, labels, config, rejects, progress)
    profile = profile_rows(
        student_id=config.student.id,
        student_revision=revision,
        labels=labels,
        grades=current_grades(config, root).select(["problem_id", "n", "k"]).to_pylist(),
        attributions=attributions,
        strength=sk.sel_strength,
    )
    teacher_model = roles.teacher.model_id if attributions else ""  # asking for the teacher starts it
    attribution_rows = _attribution_rows(attributions, config.student.id, revision, teacher_model)
    root.write_table("skill_attributions", to_table(attribution_rows, SKILL_ATTRIBUTIONS), part)
    table = to_table(profile, SKILL_PROFILE)
    path = root.write_table("skill_profile", table, part)
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": f"skills-profile-{config.student.id}"})
    counts = {
        "failed_rollouts": len(failed),
        "failures_chosen": len(chosen),
        "failures_attributed": sum(bool(a.skills) for a in attributions),
        "attribution_rejects": len(rejects),
        "skills_profiled": table.num_rows,
    }
    weakest = sorted(profile, key=lambda r: (-float(r["fail_share"]), r["pass_rate"] or 0.0))[:5]  # type: ignore[arg-type]
    columns = ["skill_id", "n_problems", "pass_rate", "n_failures", "n_fail_attributed", "fail_share", "weight"]
    figures = meter.figures() | {"prompt_version": prompt_versions("skills_attribute_failure")}
    markdown = {
        "reject_reasons": reasons_markdown(Counter(_reason_kind(r["reason"]) for r in rejects)),
        "preview": markdown_table(weakest, columns),
    }
    return StageSummary(table, counts, figures, path=path, markdown=markdown)


def _attribution_rows(
    attributions: Sequence[Attribution], student_id: str, revision: str, teacher_model: str
) -> list[dict[str, object]]:
    """The `skill_attributions` rows: one per (failed rollout, skill the teacher named)."""
    return [
        {
            "problem_id": a.problem_id,
            "student_id": student_id,
            "student_revision": revision,
            "sample_index": a.sample_index,
            "skill_id": skill,
            "labeler": teacher_model,
            "version": LABEL_VERSION,
        }
        for a in attributions
        for skill in a.skills
    ]


def _attribute(
    teacher: Engine,
    chosen: Sequence[Mapping[str, object]],
    problems: Mapping[str, Problem],
    vocab: Vocabulary,
    labels: Mapping[str, Sequence[str]],
    config: ProjectConfig,
    rejects: list[dict[str, object]],
    progress: bool,
) -> list[Attribution]:
    """The teacher's missing skills for each chosen failed rollout; a rejected answer is an attribution with
    no skills (it still counts as a failure looked at), a failed engine call is left out (retried next run).
    With `attribute_from: problem` the teacher chooses among the problem's own skills: a failure can only show
    missing a skill the problem needs, and a small teacher offered the whole list drifts to generic ones."""
    sk = config.skills
    sampling = SamplingParams(temperature=sk.temperature, max_tokens=sk.max_tokens, seed=sk.seed)
    requests, offered = [], []
    for row in chosen:
        problem = problems[str(row["problem_id"])]
        own = labels.get(problem.problem_id, []) if sk.attribute_from == "problem" else []
        candidates = offered_skills(own, vocab)
        offered.append(candidates)
        order = shuffled(list(candidates), f"{sk.seed}:{problem.problem_id}:{row['sample_index']}")
        messages = attribution_messages(
            problem.question, problem.answer, str(row["completion"]), order, sk.attribution_max,
            attempt_chars=sk.attempt_chars,
        )  # fmt: skip
        requests.append(ChatRequest.of(messages, sampling))
    out = []
    groups = teacher.generate(requests, progress=progress, desc="attributing failures")
    for row, group, candidates in zip(chosen, groups, offered, strict=True):
        ref, completion = f"{row['problem_id']}#{row['sample_index']}", group[0]
        if not completion.ok:
            rejects.append(_reject("skills_attribute", ref, f"engine: {completion.error}", ""))
            continue
        parsed = parse_missing_skills(completion.text, candidates, vocab, max_labels=sk.attribution_max)
        rejects += [_reject("skills_attribute", f"{ref}#{raw}", why, completion.text) for raw, why in parsed.rejected]
        if not parsed.ok:
            rejects.append(_reject("skills_attribute", ref, str(parsed.error), completion.text))
        out.append(Attribution(str(row["problem_id"]), int(row["sample_index"]), parsed.accepted))  # type: ignore[call-overload]
    return out
