"""STAT-Syn as a stage (methods §7 stage 3b; He et al., arXiv 2510.10023): new problems for the student's weakest
skills, read from its `skill_profile` (`scoring.stages.skills`).

For each target skill the teacher sees seeded reference problems of that skill and writes new ones; a question is
kept when it copies no pool problem and the answer check agrees on a majority answer. Every step is a
`synthesis_log` row (method `stat_syn`); accepted problems go to `synthesized_problems`, which the `problems` stage
pools. All calls are seeded and cached, so a rerun makes zero model calls and rewrites identical tables.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from engines import ChatRequest, Engine, SamplingParams
from scoring.config import ProjectConfig
from scoring.grading.agreement import Agreement, check_answers, solution_requests
from scoring.grading.skills import effective_labels
from scoring.grading.verify import Verifier
from scoring.stages.problems import load_pool
from scoring.stages.report import PREVIEW_ROWS, CostMeter, StageSummary, markdown_table, synthesis_markdown
from scoring.stages.roles import EngineRoles
from scoring.stages.skills import STAT_SYN, read_vocabulary
from scoring.stages.synthesis_log import SynthesisRecord, synth_partition
from scoring.storage import DataRoot
from synthesis.problem import Problem, make_problem_id, normalize_text
from synthesis.skill_vocabulary import Skill
from synthesis.skills import parse_questions, prompt_versions, stat_syn_messages
from synthesis.structured import ParseError

METHOD = STAT_SYN


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
    teacher = roles.teacher
    meter, record = CostMeter(teacher), SynthesisRecord(METHOD)
    pool = {p.problem_id: p for p in load_pool(root) if p.source != METHOD}
    targets = _targets(config, root, pool, record)
    candidates = _syn_candidates(teacher, targets, pool, record, config, progress)
    with Verifier(config.verify) as verifier:
        _agree(config, teacher, verifier, candidates, record, progress)
    _, table = record.write(root)
    funnel = record.funnel()
    counts = {
        "skills_targeted": len(targets),
        "questions_parsed": funnel.get("parse", {}).get("kept", 0),
        "novel": funnel.get("novel", {}).get("kept", 0),
        "kept": table.num_rows,
    }
    figures = meter.figures(kept=table.num_rows) | {"prompt_version": prompt_versions("skills_stat_syn")}
    preview = markdown_table(table.to_pylist()[:PREVIEW_ROWS], ["problem_id", "question", "answer", "metadata"])
    path = root.table_path("synthesized_problems", synth_partition(METHOD))
    return StageSummary(table, counts, figures, path=path, markdown=synthesis_markdown(record, preview))


def _targets(
    config: ProjectConfig, root: DataRoot, pool: Mapping[str, Problem], record: SynthesisRecord
) -> list[tuple[Skill, list[str]]]:
    """The missing skills to write for, each with its seeded reference problems; a skill without a reference
    problem in the pool (or no longer in the vocabulary) is logged and skipped."""
    sk = config.skills
    vocab = read_vocabulary(root)
    labels = effective_labels(root.read_table("problem_skills"))
    targets: list[tuple[Skill, list[str]]] = []
    for skill_id in missing_skills(root, config.student.id, sk.syn_skills):
        members = sorted(pid for pid, s in labels.items() if skill_id in s and pid in pool)
        refs = random.Random(f"{sk.seed}:{skill_id}").sample(members, min(sk.syn_references, len(members)))
        usable = bool(refs) and skill_id in vocab
        record.decide("target", skill_id, kept=usable, reason="" if usable else "no reference problem with this skill")
        if usable:
            targets.append((vocab.get(skill_id), refs))
    return targets


def _agree(
    config: ProjectConfig,
    teacher: Engine,
    verifier: Verifier,
    candidates: list[tuple[Skill, list[str], str]],
    record: SynthesisRecord,
    progress: bool,
) -> None:
    """The answer check on every novel question; the agreed ones are accepted with an agreeing solution."""
    if not candidates:
        return
    sk, answers = config.skills, config.synthesis.answers
    items: list[tuple[str, str | None]] = [(q, None) for _, _, q in candidates]
    agreements = check_answers(items, teacher, verifier, answers, seed=sk.seed, progress=progress)
    # The solutions themselves come from the cache (the calls check_answers just made): the first agreeing one
    # is kept as the problem's solution, as STAT keeps only agreeing solutions.
    requests = solution_requests([q for _, _, q in candidates], answers, seed=sk.seed)
    solutions = [[c.text for c in g if c.ok] for g in teacher.generate(requests, progress=False)]
    for index, (candidate, agreement, texts) in enumerate(zip(candidates, agreements, solutions, strict=True)):
        _accept(record, index, candidate, agreement, texts, teacher.model_id)


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
