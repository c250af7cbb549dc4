"""Skill stages (methods §7 STAT, He et al., arXiv 2510.10023; §9 GLAN key concepts): vocabulary → problem labels
→ the student's missing-skill profile (with STAT-Sel weights) → STAT-Syn problems for its weakest skills.

Each stage reads the data root, calls the teacher (`roles.teacher`) through the cached engine with seeded requests,
writes its tables whole, and returns a `StageSummary`; a rerun with the same config makes zero model calls and
writes the same tables. Malformed teacher output becomes `rejects` rows (origin `skills` for labels,
`skills-vocabulary` for proposals, `skills-profile-<student>` for attributions) or `synthesis_log` rows (STAT-Syn).
The curriculum reads the results through `main_skill` and `problem_skill_weights` (re-exported here).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path

import pyarrow as pa

from engines import ChatRequest, Engine, SamplingParams
from engines.config import expected_revision
from scoring.config import ProjectConfig
from scoring.grading.agreement import Agreement, check_answers, solution_requests
from scoring.grading.skills import (
    Attribution,
    choose_failures,
    effective_labels,
    label_agreement,
    main_skill,
    markdown_table,
    problem_skill_weights,
    profile_rows,
    reasons_markdown,
    stats_delta,
)
from scoring.grading.verify import Verifier
from scoring.schemas import PROBLEM_SKILLS, REJECTS, SKILL_ATTRIBUTIONS, SKILL_PROFILE, SKILLS, to_table
from scoring.stages.pipeline import (
    StageSummary,
    current_grades,
    load_pool,
    load_problems,
    student_partition,
    student_rollouts,
)
from scoring.stages.roles import EngineRoles
from scoring.stages.synthesis_log import SynthesisRecord, funnel_markdown, synth_partition
from scoring.storage import DataRoot
from synthesis.families import FAMILIES
from synthesis.problem import Problem, make_problem_id, normalize_text
from synthesis.skills import (
    FAMILY_LABEL_VERSION,
    GLAN_LABEL_VERSION,
    LABEL_VERSION,
    STAT_SYN_LABEL_VERSION,
    Skill,
    Vocabulary,
    attribution_messages,
    family_skills,
    glan_concept_skills,
    glan_concepts,
    label_messages,
    load_vocabulary_yaml,
    offered_skills,
    parse_missing_skills,
    parse_proposal,
    parse_questions,
    parse_skill_ids,
    prompt_versions,
    proposal_messages,
    shuffled,
    stat_syn_messages,
)
from synthesis.structured import ParseError

__all__ = [
    "build_problem_skills",
    "build_skill_profile",
    "build_skill_vocabulary",
    "build_stat_syn",
    "copy_reason",
    "known_labels",
    "main_skill",
    "missing_skills",
    "problem_skill_weights",
    "read_vocabulary",
]

PROPOSE_BATCH = 4  # problems per proposal prompt: keeps the prompt inside a 1,024-token context
FAILED_VERDICTS = ("wrong", "unparseable")  # timeout/error say nothing about the student (design.md, Verdicts)
METHOD = "stat_syn"


def known_labels(problem: Problem, vocab: Vocabulary) -> list[tuple[str, str, str]]:
    """(skill id, labeler, version) of the labels a problem carries without a model call: its procedural
    family's tags, its GLAN key concepts, its STAT-Syn target skill — each resolved in `vocab`, main first."""
    found: list[tuple[str, str, str]] = []
    if problem.family in FAMILIES:
        found += [(s, "family", FAMILY_LABEL_VERSION) for s in FAMILIES.get(problem.family).skill_ids()]
    found += [(c, "glan", GLAN_LABEL_VERSION) for c in glan_concepts(problem.metadata)]
    target = _metadata(problem).get("target_skill") if problem.source == METHOD else None
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
    started = time.perf_counter()
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
        if problem.family not in FAMILIES and not concepts and problem.source != METHOD:
            unlabeled.append(problem)
    chosen = random.Random(f"{sk.seed}:propose").sample(unlabeled, min(sk.propose_from, len(unlabeled)))
    rejects: list[dict[str, object]] = []
    stats: dict[str, float | int] = {}
    if chosen and len(vocab) < sk.max_skills:
        before = replace(roles.teacher.stats)
        for ref, proposed in _propose(roles.teacher, chosen, config, rejects, progress):
            counts["teacher_proposed"] += len(proposed)
            for skill in proposed:
                if len(vocab) >= sk.max_skills:
                    rejects.append(_reject("skills_propose", ref, f"vocabulary full ({sk.max_skills})", skill.name))
                else:
                    add([skill], "teacher_kept")
        stats = stats_delta(roles.teacher.stats, before)
    table = to_table([{f.name: getattr(s, f.name) for f in fields(Skill)} for s in vocab], SKILLS)
    path = root.write_table("skills", table)
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": "skills-vocabulary"})
    counts |= {"skills": len(vocab), "rejected": len(rejects), "unlabeled_problems": len(unlabeled)}
    figures = stats | {
        "seconds": round(time.perf_counter() - started, 3),
        "reject_reasons_md": reasons_markdown(r["reason"] for r in rejects),
        "preview_md": markdown_table(table.to_pylist()[:12], ["skill_id", "name", "source", "definition"]),
        "prompt_version": prompt_versions("skills_propose"),
    }
    return StageSummary(table, dict(counts), figures, path=path)


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
    started = time.perf_counter()
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
    stats: dict[str, float | int] = {}
    if to_label:
        before = replace(roles.teacher.stats)
        labeled = _teacher_labels(roles.teacher, to_label, vocab, config, rejects, progress)
        counts |= {"teacher_requested": len(to_label), "teacher_accepted": len(labeled)}
        for pid, skills in labeled:
            rows += [
                {"problem_id": pid, "skill_id": s, "labeler": roles.teacher.model_id, "version": LABEL_VERSION}
                for s in skills
            ]
        stats = stats_delta(roles.teacher.stats, before)
    table = to_table(rows, PROBLEM_SKILLS)
    path = root.write_table("problem_skills", table)
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": "skills"})
    counts |= {"vocabulary": len(vocab), "labels": table.num_rows, "labels_rejected": len(rejects)}
    figures = stats | {f"agreement_{k}": v for k, v in label_agreement(table).items()}
    if not len(vocab):
        figures["status"] = "empty vocabulary: materialize skill_vocabulary (build_skill_vocabulary) first"
    figures |= {
        "seconds": round(time.perf_counter() - started, 3),
        "reject_reasons_md": reasons_markdown(_reason_kind(r["reason"]) for r in rejects),
        "preview_md": _labels_preview(table),
        "prompt_version": prompt_versions("skills_label"),
    }
    return StageSummary(table, dict(counts), figures, path=path)


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
    started = time.perf_counter()
    part = student_partition(config)
    revision = expected_revision(config.student.engine, root.models_dir)
    vocab = read_vocabulary(root)
    problems = {p.problem_id: p for p in load_problems(root)}
    rollouts = student_rollouts(config, root, revision).to_pylist()
    failed = [r for r in rollouts if r["verdict"] in FAILED_VERDICTS and r["problem_id"] in problems]
    chosen = choose_failures(failed, sk.failures_attributed, sk.seed) if len(vocab) else []
    rejects: list[dict[str, object]] = []
    attributions: list[Attribution] = []
    stats: dict[str, float | int] = {}
    labels = effective_labels(root.read_table("problem_skills"))
    if chosen:
        before = replace(roles.teacher.stats)
        attributions = _attribute(roles.teacher, chosen, problems, vocab, labels, config, rejects, progress)
        stats = stats_delta(roles.teacher.stats, before)
    attribution_rows = [
        {
            "problem_id": a.problem_id,
            "student_id": config.student.id,
            "student_revision": revision,
            "sample_index": a.sample_index,
            "skill_id": skill,
            "labeler": roles.teacher.model_id,
            "version": LABEL_VERSION,
        }
        for a in attributions
        for skill in a.skills
    ]
    profile = profile_rows(
        student_id=config.student.id,
        student_revision=revision,
        labels=labels,
        grades=current_grades(config, root).select(["problem_id", "n", "k"]).to_pylist(),
        attributions=attributions,
        strength=sk.sel_strength,
    )
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
    figures = stats | {
        "seconds": round(time.perf_counter() - started, 3),
        "reject_reasons_md": reasons_markdown(_reason_kind(r["reason"]) for r in rejects),
        "preview_md": markdown_table(weakest, columns),
        "prompt_version": prompt_versions("skills_attribute_failure"),
    }
    return StageSummary(table, counts, figures, path=path)


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


# -- stage 4: STAT-Syn -------------------------------------------------------------------------------------------


def missing_skills(root: DataRoot, student_id: str, top: int) -> list[str]:
    """The student's `top` missing skills by `fail_share` (ties: more attributions, then id); skills never named
    in an attribution are not missing."""
    rows = [r for r in root.read_table("skill_profile", {"student": student_id}).to_pylist() if r["n_fail_attributed"]]
    rows.sort(key=lambda r: (-(r["fail_share"] or 0.0), -r["n_fail_attributed"], r["skill_id"]))
    return [r["skill_id"] for r in rows[:top]]


def build_stat_syn(config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True) -> StageSummary:
    """STAT-Syn (methods §7 stage 3b): for each of the student's top missing skills, the teacher sees
    `syn_references` (paper: 3) seeded problems of that skill and writes `syn_per_skill` (paper: 2) new ones; a
    question is kept when `synthesis.answers` agreement accepts a majority answer (paper: ≥ 2 of 3 solutions), and
    is written to `synthesized_problems` (method `stat_syn`), so the `problems` stage pools and grades it."""
    sk = config.skills
    started = time.perf_counter()
    record = SynthesisRecord(METHOD)
    teacher = roles.teacher
    before = replace(teacher.stats)
    vocab = read_vocabulary(root)
    pool = {p.problem_id: p for p in load_pool(root) if p.source != METHOD}
    labels = effective_labels(root.read_table("problem_skills"))
    targets: list[tuple[Skill, list[str]]] = []
    for skill_id in missing_skills(root, config.student.id, sk.syn_skills):
        members = sorted(pid for pid, s in labels.items() if skill_id in s and pid in pool)
        refs = random.Random(f"{sk.seed}:{skill_id}").sample(members, min(sk.syn_references, len(members)))
        usable = bool(refs) and skill_id in vocab
        record.decide("target", skill_id, kept=usable, reason="" if usable else "no reference problem with this skill")
        if usable:
            targets.append((vocab.get(skill_id), refs))
    candidates = _syn_candidates(teacher, targets, pool, record, config, progress)
    answers = config.synthesis.answers
    items: list[tuple[str, str | None]] = [(q, None) for _, _, q in candidates]
    with Verifier(config.verify) as verifier:
        agreements = check_answers(items, teacher, verifier, answers, seed=sk.seed, progress=progress) if items else []
    # The solutions themselves come from the cache (the calls check_answers just made): the first agreeing one
    # is kept as the problem's solution, as STAT keeps only agreeing solutions.
    requests = solution_requests([q for _, _, q in candidates], answers, seed=sk.seed)
    solutions = [[c.text for c in g if c.ok] for g in teacher.generate(requests, progress=False)] if items else []
    for index, (candidate, agreement, texts) in enumerate(zip(candidates, agreements, solutions, strict=True)):
        _accept(record, index, candidate, agreement, texts, teacher.model_id)
    _, table = record.write(root)
    stats = stats_delta(teacher.stats, before)
    funnel = record.funnel()
    counts = {
        "skills_targeted": len(targets),
        "questions_parsed": funnel.get("parse", {}).get("kept", 0),
        "novel": funnel.get("novel", {}).get("kept", 0),
        "kept": table.num_rows,
    }
    tokens = int(stats["prompt_tokens"]) + int(stats["completion_tokens"])
    figures = stats | {
        "seconds": round(time.perf_counter() - started, 3),
        "tokens_per_kept_problem": round(tokens / table.num_rows, 1) if table.num_rows else 0.0,
        "funnel_md": funnel_markdown(record),
        "reject_reasons_md": reasons_markdown(f"{r['stage']}: {r['reason']}" for r in record.log if not r["kept"]),
        "preview_md": markdown_table(table.to_pylist()[:5], ["problem_id", "question", "answer", "metadata"]),
        "prompt_version": prompt_versions("skills_stat_syn"),
    }
    return StageSummary(table, counts, figures, path=root.table_path("synthesized_problems", synth_partition(METHOD)))


def _syn_candidates(
    teacher: Engine,
    targets: list[tuple[Skill, list[str]]],
    pool: Mapping[str, Problem],
    record: SynthesisRecord,
    config: ProjectConfig,
    progress: bool,
) -> list[tuple[Skill, list[str], str]]:
    """One teacher call per target skill; every question it writes is logged (`generate`, `parse`, `novel`), and
    the parsed ones that copy no pool problem are returned as (skill, reference ids, question)."""
    sk = config.skills
    version = prompt_versions("skills_stat_syn")
    sampling = SamplingParams(temperature=sk.syn_temperature, max_tokens=sk.syn_max_tokens, seed=sk.seed)
    requests = [
        ChatRequest.of(stat_syn_messages(skill, [pool[r].question for r in refs], sk.syn_per_skill), sampling)
        for skill, refs in targets
    ]
    groups = teacher.generate(requests, progress=progress, desc="STAT-Syn questions") if requests else []
    known_texts = {normalize_text(p.question).lower(): pid for pid, p in pool.items()}
    candidates = []
    for (skill, refs), group in zip(targets, groups, strict=True):
        completion, sid = group[0], skill.skill_id
        meta = {"model": teacher.model_id, "prompt_version": version, "parent_id": refs[0]}
        record.decide(
            "generate", sid, kept=completion.ok, reason=completion.error or "", text=completion.text,
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
            detail={"references": refs}, **meta,
        )  # fmt: skip
        if not completion.ok:
            continue
        try:
            questions, rejected = parse_questions(completion.text, sk.syn_per_skill)
        except ParseError as exc:
            record.decide("parse", f"{sid}#0", kept=False, reason=exc.reason, text=completion.text, **meta)
            continue
        for index, (raw, why) in enumerate(rejected):
            record.decide("parse", f"{sid}#x{index}", kept=False, reason=why, text=raw, **meta)
        for index, question in enumerate(questions):
            record.decide("parse", f"{sid}#{index}", kept=True, text=question, **meta)
            why = copy_reason(question, known_texts, {r: pool[r].question for r in refs})
            record.decide("novel", f"{sid}#{index}", kept=not why, reason=why, text=question, **meta)
            if not why:
                candidates.append((skill, refs, question))
    return candidates


def copy_reason(question: str, pool_texts: Mapping[str, str], references: Mapping[str, str]) -> str:
    """Why a new question is not new ("" when it is): it is a pool problem, or it is cut out of a reference it
    was shown (the 0.5B teacher answered with "12^3 mod 5" taken from "Compute 12^3 mod 5, that is, ...")."""
    text = normalize_text(question).lower()
    if text in pool_texts:
        return f"copy of pool problem {pool_texts[text]}"
    for pid, reference in references.items():
        if text in normalize_text(reference).lower():
            return f"copied out of reference problem {pid}"
    return ""


def _accept(
    record: SynthesisRecord,
    index: int,
    candidate: tuple[Skill, list[str], str],
    agreement: Agreement,
    solutions: list[str],
    model: str,
) -> None:
    """Log the agreement decision on one candidate and accept it as a `stat_syn` problem when it passed."""
    skill, refs, question = candidate
    pid = make_problem_id(question, agreement.answer or "")
    record.decide(
        "agreement", pid, kept=agreement.accepted, reason=agreement.reason, text=question, parent_id=refs[0],
        detail=agreement.detail(),
    )  # fmt: skip
    if not agreement.accepted or agreement.answer is None:
        return
    agreeing = [solutions[i] for i in agreement.agreeing if i < len(solutions)]
    record.accept(
        Problem.create(
            source=METHOD,
            family=METHOD,
            question=question,
            answer=agreement.answer,
            source_ref=f"{METHOD}:{skill.skill_id}:{index}",
            solution=agreeing[0] if agreeing else None,
            metadata={
                "target_skill": skill.skill_id,
                "seed_problem_ids": refs,
                "consistency_score": round(agreement.votes / max(agreement.k, 1), 4),
            },
            parent_id=refs[0],
            generator_model=model,
            checks_passed=["agreement"],
        )
    )
