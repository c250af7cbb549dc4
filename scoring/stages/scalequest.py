"""ScaleQuest as a stage (methods §8; Ding et al., arXiv 2410.18693): questions from scratch, then filters.

1. `generate`: `questions` samples from the generator's question-only prefix (one open-user-turn request, sample
   index i = candidate `q<i>`), temperature/top-p from the config (paper: 1.0 / 0.99).
2. `language`: `synthesis.scalequest.parse_question` + `language_filter` (ASCII only, length, not code, not a
   solution, asks something) and exact duplicates of an earlier candidate.
3. `solvable`: the teacher's greedy Yes/No check.
4. `majority_vote`: `responses` solutions from the teacher (the shared solve prompt); the majority answer, when
   `scoring.grading.agreement.majority_agreement` accepts it, becomes the gold answer and the best agreeing response
   (`pick_response`) the solution. The paper picks a response with a reward model instead; we have none.
5. `difficulty`: our difficulty, not the paper's regression head — the student's saved pass-rate predictor when
   one exists (`scoring.stages.difficulty.predictor_path`), else a few student rollouts (`difficulty_rollouts`,
   default `rollouts.k`, with the grading stage's sampling, so grading reuses them from the cache). Questions with
   pass rate ≥ `grading.bands.too_easy` are dropped with probability `drop_easy_share` (a seeded draw per item).

Every candidate gets one `synthesis_log` row per filter it reached (method `scalequest`, round 0). Every model
call goes through the cache, so a rerun makes no model call and rewrites identical tables.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field, fields

from engines import Completion, Engine, EngineStats
from engines.errors import ConfigError
from scoring.config import ProjectConfig
from scoring.grading.agreement import Agreement, majority_agreement, solution_requests
from scoring.grading.predictor import PREDICTOR_METHOD, PassRatePredictor
from scoring.grading.rollouts import PROMPT_VERSION, run_rollouts
from scoring.grading.verify import Verifier, parse_answer
from scoring.stages.difficulty import ignored_legacy_predictor, predictor_path
from scoring.stages.pipeline import StageSummary
from scoring.stages.roles import EngineRoles
from scoring.stages.synthesis_log import SynthesisRecord, funnel_markdown, synth_partition
from scoring.storage import DataRoot
from synthesis.config import AnswerCheckConfig
from synthesis.problem import Problem, normalize_text
from synthesis.prompting import prompt_version
from synthesis.scalequest import (
    SOLVABILITY,
    ScaleQuestConfig,
    drops_easy,
    language_filter,
    parse_question,
    parse_verdict,
    pick_response,
    question_prompt_version,
    question_request,
    solvability_request,
)
from synthesis.structured import ParseError

METHOD = "scalequest"
CHECKS = ("language", "solvable", "majority_vote", "difficulty")


@dataclass(slots=True)
class Candidate:
    """One sampled question on its way through the filters."""

    item_id: str
    sample_index: int
    question: str
    trimmed_answer: bool
    verdict: str | None = None
    agreement: Agreement | None = None
    solution: str | None = None
    chosen: int | None = None
    extracted: list[str | None] = field(default_factory=list)


def build_scalequest(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """Sample, filter, answer and difficulty-sample ScaleQuest questions; write `synthesis_log` and
    `synthesized_problems` (partition `scalequest`/round 0) and return the accepted problems with the funnel."""
    settings = config.synthesis.scalequest
    answers = _response_check(settings, config.synthesis.answers)
    started = time.perf_counter()
    # The student is started only when it has to roll out (no saved predictor).
    needs_student = not predictor_path(root, config.student.id).is_file()
    engines = _distinct([roles.generator, roles.teacher, *([roles.student] if needs_student else [])])
    before = [_copy(e.stats) for e in engines]
    record = SynthesisRecord(METHOD, 0)
    candidates = _sample_questions(settings, roles.generator, record, progress)
    candidates = _check_solvable(settings, candidates, roles.teacher, record, progress)
    with Verifier(config.verify) as verifier:
        candidates = _answer(settings, answers, candidates, roles.teacher, verifier, record, progress)
        problems = difficulty_sampling(config, root, candidates, roles, verifier, record, progress=progress)
    for problem in problems:
        record.accept(problem)
    _, table = record.write(root)
    counts = _counts(record, settings.questions, table.num_rows)
    tokens = record.tokens()
    figures: dict[str, float | int | str] = {
        **_stats_delta(engines, before),
        "tokens_spent": tokens,
        "tokens_per_kept_problem": round(tokens / table.num_rows, 1) if table.num_rows else 0.0,
        "seconds": round(time.perf_counter() - started, 2),
        "funnel_md": funnel_markdown(record),
        "reject_reasons_md": _reasons_markdown(record),
        "preview_md": _preview_markdown(problems),
    }
    if note := ignored_legacy_predictor(root, config.student.id):  # an old pickle: rollouts were used instead
        figures["predictor_note"] = note
    return StageSummary(table, counts, figures, path=root.table_path("synthesized_problems", synth_partition(METHOD)))


def _response_check(settings: ScaleQuestConfig, answers: AnswerCheckConfig) -> AnswerCheckConfig:
    """The shared answer check with ScaleQuest's response sampling (k = `responses`)."""
    if settings.responses < answers.min_votes:
        raise ConfigError(
            f"synthesis.scalequest.responses ({settings.responses}) must be at least synthesis.answers.min_votes "
            f"({answers.min_votes}): the majority answer needs that many agreeing responses"
        )
    return answers.model_copy(
        update={
            "k": settings.responses,
            "temperature": settings.response_temperature,
            "max_tokens": settings.max_response_tokens,
        }
    )


def _sample_questions(
    settings: ScaleQuestConfig, generator: Engine, record: SynthesisRecord, progress: bool
) -> list[Candidate]:
    """Steps 1–2: sample the questions, then parse and filter them (`generate`, `language` rows)."""
    [samples] = generator.generate([question_request(settings)], progress=progress, desc="scalequest questions")
    version = question_prompt_version(settings)
    seen: dict[str, str] = {}
    survivors = []
    for sample in samples:
        item_id = f"q{sample.sample_index:05d}"
        record.decide(
            "generate",
            item_id,
            kept=sample.ok,
            reason="" if sample.ok else f"engine: {sample.error}",
            text=sample.text,
            model=generator.model_id,
            prompt_version=version,
            prompt_tokens=sample.prompt_tokens,
            completion_tokens=sample.completion_tokens,
            detail={"sample_index": sample.sample_index, "finish_reason": sample.finish_reason},
        )
        if not sample.ok:
            continue
        try:
            parsed = parse_question(sample.text, truncated=sample.finish_reason == "length")
        except ParseError as exc:
            record.decide("language", item_id, kept=False, reason=exc.reason, text=sample.text)
            continue
        reason = language_filter(
            parsed.text, min_chars=settings.min_question_chars, max_chars=settings.max_question_chars
        )
        key = normalize_text(parsed.text).lower()
        if reason is None and key in seen:
            reason = f"duplicate of {seen[key]}"
        record.decide(
            "language",
            item_id,
            kept=reason is None,
            reason=reason or "passed",
            text=parsed.text,
            detail={"trimmed_answer": parsed.trimmed_answer},
        )
        if reason is None:
            seen[key] = item_id
            survivors.append(Candidate(item_id, sample.sample_index, parsed.text, parsed.trimmed_answer))
    return survivors


def _check_solvable(
    settings: ScaleQuestConfig, candidates: list[Candidate], teacher: Engine, record: SynthesisRecord, progress: bool
) -> list[Candidate]:
    """Step 3: the teacher's greedy Yes/No solvability verdict (`solvable` rows)."""
    requests = [solvability_request(c.question, settings) for c in candidates]
    replies = teacher.generate(requests, progress=progress, desc="scalequest solvability")
    version = prompt_version(SOLVABILITY)
    survivors = []
    for candidate, [reply] in zip(candidates, replies, strict=True):
        if not reply.ok:
            kept, reason = False, f"engine: {reply.error}"
        else:
            try:
                solvable = parse_verdict(reply.text, truncated=reply.finish_reason == "length")
                candidate.verdict = "yes" if solvable else "no"
                kept, reason = solvable, "judged solvable" if solvable else "judged not solvable"
            except ParseError as exc:
                kept, reason = False, exc.reason
        record.decide(
            "solvable",
            candidate.item_id,
            kept=kept,
            reason=reason,
            text=reply.text,
            model=teacher.model_id,
            prompt_version=version,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            detail={"verdict": candidate.verdict, "finish_reason": reply.finish_reason},
        )
        if kept:
            survivors.append(candidate)
    return survivors


def _answer(
    settings: ScaleQuestConfig,
    answers: AnswerCheckConfig,
    candidates: list[Candidate],
    teacher: Engine,
    verifier: Verifier,
    record: SynthesisRecord,
    progress: bool,
) -> list[Candidate]:
    """Step 4: `responses` teacher solutions each; the majority answer and the best agreeing response."""
    requests = solution_requests([c.question for c in candidates], answers, seed=settings.seed)
    groups = teacher.generate(requests, progress=progress, desc="scalequest responses")
    survivors = []
    for candidate, group in zip(candidates, groups, strict=True):
        done: list[Completion] = [c for c in group if c.ok]
        texts = [c.text for c in done]
        agreement = majority_agreement(texts, verifier, min_votes=answers.min_votes)
        candidate.agreement = agreement
        candidate.extracted = [found.text if found else None for found in map(parse_answer, texts)]
        if agreement.accepted:
            candidate.chosen = pick_response(
                agreement.agreeing, [c.finish_reason == "stop" for c in done], [c.completion_tokens for c in done]
            )
            candidate.solution = texts[candidate.chosen]
        record.decide(
            "majority_vote",
            candidate.item_id,
            kept=agreement.accepted,
            reason=agreement.reason,
            text=candidate.solution or "",
            model=teacher.model_id,
            prompt_version=PROMPT_VERSION,
            prompt_tokens=sum(c.prompt_tokens for c in group),
            completion_tokens=sum(c.completion_tokens for c in group),
            detail={
                **agreement.detail(),
                "answers": candidate.extracted,
                "chosen": candidate.chosen,
                "failed_calls": len(group) - len(done),
            },
        )
        if agreement.accepted:
            survivors.append(candidate)
    return survivors


def difficulty_sampling(
    config: ProjectConfig,
    root: DataRoot,
    candidates: list[Candidate],
    roles: EngineRoles,
    verifier: Verifier,
    record: SynthesisRecord,
    *,
    progress: bool = True,
) -> list[Problem]:
    """Step 5 on answered candidates: the student's pass rate (its saved predictor's, else from rollouts), one
    `difficulty` row each, and a seeded drop of `drop_easy_share` of the too-easy ones. Returns the accepted
    problems (methods §8, filter c, with our difficulty in place of the paper's regression head)."""
    settings = config.synthesis.scalequest
    bands = config.grading.bands
    drafts = [_problem(c, roles.generator.model_id, settings, {}) for c in candidates]
    grades = _student_grades(config, root, drafts, roles, verifier, progress)
    accepted = []
    for candidate, draft in zip(candidates, drafts, strict=True):
        grade = grades[draft.problem_id]
        detail: dict[str, object] = {
            "pass_rate": grade.pass_rate,
            "difficulty_source": grade.source,
            "student_rollouts": grade.n,
            "student_correct": grade.k,
        }
        if grade.pass_rate is None:
            kept, reason = False, "no usable student rollouts (engine errors or verifier timeouts)"
        else:
            band = detail["band"] = bands.label(grade.pass_rate)
            dropped = band == "too_easy" and drops_easy(candidate.item_id, settings.drop_easy_share, settings.seed)
            kept = not dropped
            if band != "too_easy":
                reason = f"{band.replace('_', ' ')} (pass rate {grade.pass_rate:.2f})"
            else:
                outcome = "dropped by" if dropped else "kept by"
                reason = f"too easy (pass rate {grade.pass_rate:.2f} ≥ {bands.too_easy}), {outcome} difficulty sampling"
        record.decide(
            "difficulty",
            candidate.item_id,
            kept=kept,
            reason=reason,
            text=candidate.question,
            model=roles.student.model_id if grade.source == "rollouts" else config.student.engine.model,
            prompt_version=PROMPT_VERSION if grade.source == "rollouts" else PREDICTOR_METHOD,
            prompt_tokens=grade.prompt_tokens,
            completion_tokens=grade.completion_tokens,
            detail={**detail, "problem_id": draft.problem_id},
        )
        if kept:
            accepted.append(_problem(candidate, roles.generator.model_id, settings, detail))
    return accepted


@dataclass(frozen=True, slots=True)
class StudentGrade:
    """The student's pass rate on one question and what it cost (rollouts), or a prediction (n = 0)."""

    pass_rate: float | None  # None: no rollout said anything about the student
    source: str  # "rollouts" or the predictor's method name
    n: int = 0
    k: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def _student_grades(
    config: ProjectConfig,
    root: DataRoot,
    problems: list[Problem],
    roles: EngineRoles,
    verifier: Verifier,
    progress: bool,
) -> dict[str, StudentGrade]:
    """Pass rates from the student's saved predictor when there is one (no model call), else from rollouts."""
    path = predictor_path(root, config.student.id)
    if path.is_file():
        features = [
            {"problem_id": p.problem_id, "question": p.question, "family": p.family, "source": p.source}
            for p in problems
        ]
        predictions = PassRatePredictor.load(path).predict(features) if features else []
        return {p.problem_id: StudentGrade(p.p, PREDICTOR_METHOD) for p in predictions}
    k = config.synthesis.scalequest.difficulty_rollouts or config.rollouts.k
    result = run_rollouts(
        problems,
        roles.student,
        student_id=config.student.id,
        config=config.rollouts.model_copy(update={"k": k}),
        verifier=verifier,
        progress=progress,
    )
    tally = {p.problem_id: [0, 0, 0, 0] for p in problems}  # prompt tokens, completion tokens, n, k
    for row in result.rollouts.to_pylist():
        counts = tally[row["problem_id"]]
        counts[0] += int(row["prompt_tokens"] or 0)
        counts[1] += int(row["completion_tokens"] or 0)
        if row["verdict"] not in ("timeout", "error"):  # these say nothing about the student (design.md, Verdicts)
            counts[2] += 1
            counts[3] += row["verdict"] == "correct"
    return {
        pid: StudentGrade(c[3] / c[2] if c[2] else None, "rollouts", c[2], c[3], c[0], c[1]) for pid, c in tally.items()
    }


def _problem(candidate: Candidate, generator_model: str, settings: ScaleQuestConfig, difficulty: dict) -> Problem:
    agreement = candidate.agreement
    if agreement is None or agreement.answer is None:
        raise ValueError(f"{candidate.item_id} has no agreed answer")  # a bug: only answered candidates get here
    return Problem.create(
        source=METHOD,
        family=METHOD,
        question=candidate.question,
        answer=agreement.answer,
        source_ref=f"{METHOD}:{settings.seed}:{candidate.sample_index}",
        solution=candidate.solution,
        metadata={
            "item_id": candidate.item_id,
            "gen_temperature": settings.temperature,
            "gen_top_p": settings.top_p,
            "trimmed_answer": candidate.trimmed_answer,
            "solvability_verdict": candidate.verdict,
            "votes": agreement.votes,
            "responses": agreement.k,
            "answers": candidate.extracted,
            "chosen_response_idx": candidate.chosen,
            **difficulty,
        },
        generator_model=generator_model,
        checks_passed=CHECKS,
    )


# --- summary ------------------------------------------------------------------------------------------------------


def _counts(record: SynthesisRecord, requested: int, kept: int) -> dict[str, int]:
    funnel = record.funnel()

    def passed(stage: str) -> int:
        return funnel.get(stage, {}).get("kept", 0)

    return {
        "requested": requested,
        "generated": passed("generate"),
        "parsed": passed("language"),
        "solvable": passed("solvable"),
        "answered": passed("majority_vote"),
        "kept": kept,
    }


def _distinct(engines: list[Engine]) -> list[Engine]:
    unique: dict[int, Engine] = {}
    for engine in engines:
        unique.setdefault(id(engine), engine)
    return list(unique.values())


def _copy(stats: EngineStats) -> EngineStats:
    return EngineStats(**{f.name: getattr(stats, f.name) for f in fields(EngineStats)})


def _stats_delta(engines: list[Engine], before: list[EngineStats]) -> dict[str, float | int]:
    """What the role engines spent during this stage, summed (their stats are cumulative over their lives)."""
    total = EngineStats()
    for engine, then in zip(engines, before, strict=True):
        for f in fields(EngineStats):
            setattr(total, f.name, getattr(total, f.name) + getattr(engine.stats, f.name) - getattr(then, f.name))
    return total.as_dict()


def _cell(text: object, limit: int = 120) -> str:
    flat = " ".join(str(text).split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _reasons_markdown(record: SynthesisRecord) -> str:
    lines = ["| reason | count |", "|---|---|"]
    lines += [f"| {_cell(reason)} | {n} |" for reason, n in Counter(record.reject_reasons()).most_common()]
    return "\n".join(lines)


def _preview_markdown(problems: list[Problem]) -> str:
    lines = ["| question | answer | votes | pass rate |", "|---|---|---|---|"]
    for problem in problems[:5]:
        meta = json.loads(problem.metadata)
        rate = meta.get("pass_rate")
        rate_text = f"{rate:.2f}" if isinstance(rate, float | int) else "–"
        votes = f"{meta['votes']}/{meta['responses']}"
        lines.append(f"| {_cell(problem.question)} | {_cell(problem.answer, 40)} | {votes} | {rate_text} |")
    return "\n".join(lines)
