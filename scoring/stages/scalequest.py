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

from dataclasses import dataclass, field

from engines import Completion, Engine
from engines.errors import ConfigError
from scoring.config import ProjectConfig
from scoring.grading.agreement import Agreement, majority_agreement, solution_requests
from scoring.grading.predictor import PREDICTOR_METHOD
from scoring.grading.rollouts import PROMPT_VERSION
from scoring.grading.verify import Verifier, parse_answer
from scoring.stages.difficulty import ignored_legacy_predictor, predictor_path, student_grades
from scoring.stages.report import CostMeter, StageSummary, problems_preview, synthesis_markdown, tokens_per_kept
from scoring.stages.roles import EngineRoles
from scoring.stages.synthesis_log import SynthesisRecord, synth_partition
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
    # The student is started only when it has to roll out (no saved predictor).
    needs_student = not predictor_path(root, config.student.id).is_file()
    meter = CostMeter(roles.generator, roles.teacher, *([roles.student] if needs_student else []))
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
    # Tokens as logged (cached or not), so a rerun reports the same figure; the engine stats say what was paid.
    figures: dict[str, float | int | str] = meter.figures() | {
        "tokens_spent": tokens,
        "tokens_per_kept_problem": tokens_per_kept(tokens, table.num_rows),
    }
    if note := ignored_legacy_predictor(root, config.student.id):  # an old pickle: rollouts were used instead
        figures["predictor_note"] = note
    preview = problems_preview(problems, extra=("votes", "responses", "pass_rate"))
    path = root.table_path("synthesized_problems", synth_partition(METHOD))
    return StageSummary(table, counts, figures, path, markdown=synthesis_markdown(record, preview))


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
    drafts = [_problem(c, roles.generator.model_id, settings, {}) for c in candidates]
    k = settings.difficulty_rollouts or config.rollouts.k
    grades = student_grades(config, root, drafts, roles, verifier, k=k, progress=progress)
    accepted = []
    for candidate, draft in zip(candidates, drafts, strict=True):
        grade = grades[draft.problem_id]
        detail: dict[str, object] = {
            "pass_rate": grade.pass_rate,
            "difficulty_source": grade.source,
            "student_rollouts": grade.n,
            "student_correct": grade.k,
        }
        kept, reason, band = _keep_by_difficulty(grade.pass_rate, candidate.item_id, config)
        if band is not None:
            detail["band"] = band
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


def _keep_by_difficulty(pass_rate: float | None, item_id: str, config: ProjectConfig) -> tuple[bool, str, str | None]:
    """(kept, reason, band) of one question: too-easy ones are dropped by a seeded draw of `drop_easy_share`."""
    if pass_rate is None:
        return False, "no usable student rollouts (engine errors or verifier timeouts)", None
    bands, settings = config.grading.bands, config.synthesis.scalequest
    band = bands.label(pass_rate)
    if band != "too_easy":
        return True, f"{band.replace('_', ' ')} (pass rate {pass_rate:.2f})", band
    dropped = drops_easy(item_id, settings.drop_easy_share, settings.seed)
    outcome = "dropped by" if dropped else "kept by"
    return not dropped, f"too easy (pass rate {pass_rate:.2f} ≥ {bands.too_easy}), {outcome} difficulty sampling", band


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
