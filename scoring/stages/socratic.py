"""Socratic-Zero rounds as a stage (methods §10; Wang et al., arXiv 2509.24726).

Round r takes its inputs — round 1: `seeds` problems of the pool (D_0); round r > 1: the problems round r-1
accepted plus a replayed share of earlier rounds' items — and their student rollouts. The failed rollouts F are
refined by the teacher into (q', reference solution, answer); the answer must pass the agreement check; q' is
graded on the student with k attempts, and kept by its utility U = exp(-(s-µ)²/(2σ²)) (or a band on s). Every
candidate's every step is a row of `synthesis_log` (method `socratic`, the round's partition), accepted problems go
to `synthesized_problems`, and their grading rollouts to the student's `rollouts`, where round r+1 reads them.
How a round picks its inputs is in `scoring.stages.socratic_inputs`.

Rounds are idempotent: each reads only stored tables and seeded, cached model calls, so a rerun makes no model call
and rewrites identical tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.compute as pc

from engines.errors import ConfigError
from scoring.config import ProjectConfig
from scoring.grading.agreement import check_answers
from scoring.grading.rollouts import run_rollouts
from scoring.grading.verify import Verifier
from scoring.stages.report import CostMeter, StageSummary, problems_preview, synthesis_markdown
from scoring.stages.roles import EngineRoles
from scoring.stages.rollouts import store_rollouts
from scoring.stages.socratic_inputs import METHOD, RoundInput, grading_config, input_rollouts, round_inputs
from scoring.stages.synthesis_log import SynthesisRecord, synth_partition
from scoring.storage import DataRoot
from synthesis.problem import Problem, make_problem_id, normalize_text
from synthesis.socratic import (
    FailedAttempt,
    SocraticConfig,
    keep_decision,
    parse_refinement,
    pick_failures,
    refine_prompt_version,
    refine_request,
)
from synthesis.structured import ParseError

FAILED_VERDICTS = ("wrong", "unparseable")  # timeout/error say nothing about the student (design.md, Verdicts)
UNGRADED_VERDICTS = ("timeout", "error")
MAX_FAILED_SOLUTION_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class _Run:
    """What every step of one round needs."""

    config: ProjectConfig
    root: DataRoot
    roles: EngineRoles
    record: SynthesisRecord
    verifier: Verifier
    progress: bool

    @property
    def socratic(self) -> SocraticConfig:
        return self.config.synthesis.socratic


def build_socratic_round(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, round_no: int, *, progress: bool = True
) -> StageSummary:
    """Run Socratic-Zero round `round_no` (≥ 1) and write its partitions of `synthesis_log` and
    `synthesized_problems`; returns the accepted problems with the round's funnel and cost."""
    if round_no < 1:
        raise ConfigError(f"Socratic-Zero rounds are numbered from 1, got {round_no}")
    meter = CostMeter(roles.student, roles.teacher)
    socratic = config.synthesis.socratic
    record = SynthesisRecord(METHOD, round_no)
    inputs, status = round_inputs(config, root, round_no)
    if status:
        return _finish(record, root, meter, status=status)
    with Verifier(config.verify) as verifier:
        run = _Run(config, root, roles, record, verifier, progress)
        rollouts = input_rollouts(config, root, roles.student, [i.problem for i in inputs], verifier, progress)
        failures = _log_inputs(record, inputs, rollouts)
        picked = pick_failures(failures, socratic.failures_per_round, seed=socratic.seed, round_no=round_no)
        _log_selection(record, failures, picked, socratic)
        refined = _refine(run, picked, {i.problem.problem_id: i.problem for i in inputs})
        _grade(run, _agree(run, refined))
    return _finish(record, root, meter, status="ok")


# --- what the round saw ------------------------------------------------------------------------------------------


def _log_inputs(record: SynthesisRecord, inputs: Sequence[RoundInput], rollouts: pa.Table) -> list[FailedAttempt]:
    by_problem: dict[str, list[dict[str, object]]] = {}
    for row in rollouts.to_pylist():
        by_problem.setdefault(str(row["problem_id"]), []).append(row)
    failures: list[FailedAttempt] = []
    for item in inputs:
        rows = by_problem.get(item.problem.problem_id, [])
        failed = [r for r in rows if r["verdict"] in FAILED_VERDICTS]
        graded = [r for r in rows if r["verdict"] not in UNGRADED_VERDICTS]
        record.decide(
            "input",
            item.problem.problem_id,
            kept=bool(graded),
            reason="" if graded else "no graded rollouts of the student",
            text=item.problem.question,
            parent_id=item.problem.parent_id,
            detail={"origin": item.origin, "replay": item.replay, "n": len(graded), "failed": len(failed)},
        )
        failures += [
            FailedAttempt(
                item.problem.problem_id, int(r["sample_index"]), str(r["completion"]), str(r["verdict"]), item.replay
            )
            for r in failed
        ]
    return failures


def _log_selection(
    record: SynthesisRecord, failures: Sequence[FailedAttempt], picked: Sequence[FailedAttempt], cfg: SocraticConfig
) -> None:
    chosen = {f.failure_id for f in picked}
    for failure in sorted(failures, key=lambda f: (f.problem_id, f.sample_index)):
        kept = failure.failure_id in chosen
        record.decide(
            "select",
            failure.failure_id,
            kept=kept,
            reason="" if kept else f"not picked (failures_per_round = {cfg.failures_per_round})",
            text=failure.completion,
            parent_id=failure.problem_id,
            detail=_detail(failure),
        )


# --- refine, agree, grade ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """A parsed refinement on its way through the filters."""

    failure: FailedAttempt
    question: str
    solution: str | None
    answer: str

    @property
    def problem_id(self) -> str:
        return make_problem_id(self.question, self.answer)


def _refine(run: _Run, picked: Sequence[FailedAttempt], problems: dict[str, Problem]) -> list[Candidate]:
    """The teacher's (q', y'_ref, answer) per failure; unparseable replies, copies and duplicates are rejected."""
    teacher = run.roles.teacher
    requests = [refine_request(problems[f.problem_id].question, f.completion, run.socratic) for f in picked]
    completions = teacher.generate(requests, progress=run.progress, desc="socratic: refining failures")
    version = refine_prompt_version()
    known = {normalize_text(p.question).casefold() for p in problems.values()}
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for failure, (completion,) in zip(picked, completions, strict=True):
        reason, candidate = "", None
        if not completion.ok:
            reason = f"engine error: {completion.error}"
        else:
            try:
                refined = parse_refinement(completion.text)
                candidate = Candidate(failure, refined.question, refined.solution, refined.answer)
            except ParseError as exc:
                reason = exc.reason
        if candidate is not None and normalize_text(candidate.question).casefold() in known:
            reason, candidate = "copied an input problem", None
        if candidate is not None and candidate.problem_id in seen:
            reason, candidate = "duplicate of another refinement this round", None
        run.record.decide(
            "refine",
            candidate.problem_id if candidate else failure.failure_id,
            kept=candidate is not None,
            reason=reason,
            text=candidate.question if candidate else completion.text,
            parent_id=failure.problem_id,
            model=teacher.model_id,
            prompt_version=version,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            detail=_detail(failure) | ({"answer": candidate.answer} if candidate else {}),
        )
        if candidate is not None:
            seen.add(candidate.problem_id)
            candidates.append(candidate)
    return candidates


def _agree(run: _Run, candidates: Sequence[Candidate]) -> list[Candidate]:
    """The teacher's answer is kept only when independent teacher solutions reach it (`check_answers`)."""
    if not candidates:
        return []
    teacher, answers = run.roles.teacher, run.config.synthesis.answers
    items = [(c.question, c.answer) for c in candidates]
    results = check_answers(items, teacher, run.verifier, answers, seed=run.socratic.seed, progress=run.progress)
    agreed = []
    for candidate, agreement in zip(candidates, results, strict=True):
        run.record.decide(
            "agreement",
            candidate.problem_id,
            kept=agreement.accepted,
            reason="" if agreement.accepted else agreement.reason,
            text=candidate.question,
            parent_id=candidate.failure.problem_id,
            model=teacher.model_id,
            detail=_detail(candidate.failure) | agreement.detail(),
        )
        if agreement.accepted:
            agreed.append(candidate)
    return agreed


def _grade(run: _Run, candidates: Sequence[Candidate]) -> None:
    """Grade each q' with k student attempts; keep it by the keep rule; store the kept problems' rollouts."""
    if not candidates:
        return
    student, config = run.roles.student, run.config
    drafts = [_draft(c, run.record.round_no, run.roles.teacher.model_id) for c in candidates]
    result = run_rollouts(
        drafts,
        student,
        student_id=config.student.id,
        config=grading_config(config),
        verifier=run.verifier,
        progress=run.progress,
    )
    rows: dict[str, list[dict[str, object]]] = {}
    for row in result.rollouts.to_pylist():
        rows.setdefault(str(row["problem_id"]), []).append(row)
    kept_ids: list[str] = []
    for candidate, draft in zip(candidates, drafts, strict=True):
        own = rows.get(draft.problem_id, [])
        graded = [r for r in own if r["verdict"] not in UNGRADED_VERDICTS]
        correct = sum(r["verdict"] == "correct" for r in graded)
        detail = _detail(candidate.failure) | {"n": len(graded), "k": correct}
        decision = keep_decision(correct / len(graded), run.socratic) if graded else None
        if decision is not None:
            detail |= {"s": correct / len(graded), "utility": round(decision.utility, 6), "zone": decision.zone}
        run.record.decide(
            "band",
            draft.problem_id,
            kept=bool(decision and decision.kept),
            reason=decision.reason if decision else "no graded rollouts of the student",
            text=draft.question,
            parent_id=draft.parent_id,
            model=student.model_id,
            prompt_tokens=sum(int(r["prompt_tokens"] or 0) for r in own),
            completion_tokens=sum(int(r["completion_tokens"] or 0) for r in own),
            detail=detail,
        )
        if decision is not None and decision.kept:
            kept_ids.append(draft.problem_id)
            run.record.accept(_accepted(draft, detail))
    keep = pa.array(kept_ids, pa.string())
    rollouts, audit = result.rollouts, result.audit
    store_rollouts(
        config,
        run.root,
        rollouts.filter(pc.is_in(rollouts.column("problem_id"), value_set=keep)),
        audit.filter(pc.is_in(audit.column("problem_id"), value_set=keep)),
    )


def _draft(candidate: Candidate, round_no: int, generator_model: str) -> Problem:
    failure = candidate.failure
    return Problem.create(
        source=METHOD,
        family=METHOD,
        question=candidate.question,
        answer=candidate.answer,
        source_ref=f"socratic:{round_no}:{failure.failure_id}",
        solution=candidate.solution,
        metadata={
            "round": round_no,
            "failed_solution": failure.completion[:MAX_FAILED_SOLUTION_CHARS],
            "failed_sample_index": failure.sample_index,
            "failed_verdict": failure.verdict,
            "replay": failure.replay,
            "is_seed": False,
            "refiner": "teacher",
            "prompt_version": refine_prompt_version(),
        },
        parent_id=failure.problem_id,
        generator_model=generator_model,
        checks_passed=["agreement", "band"],
    )


def _accepted(draft: Problem, graded: dict[str, object]) -> Problem:
    metadata = json.loads(draft.metadata) | {
        "solver_success_k": graded["s"],
        "solver_attempts": graded["n"],
        "utility": graded["utility"],
        "zone": graded["zone"],
    }
    return replace(draft, metadata=json.dumps(metadata, sort_keys=True))


def _detail(failure: FailedAttempt) -> dict[str, object]:
    return {
        "failure_id": failure.failure_id,
        "failed_sample_index": failure.sample_index,
        "replay": failure.replay,
        "s": None,
        "utility": None,
        "zone": None,
    }


# --- summary ------------------------------------------------------------------------------------------------------


def _finish(record: SynthesisRecord, root: DataRoot, meter: CostMeter, *, status: str) -> StageSummary:
    """Write the round's partitions and sum it up: the funnel as counts, cost, status, and the markdown blocks."""
    _, table = record.write(root)
    funnel = record.funnel()

    def kept(stage: str) -> int:
        return funnel.get(stage, {}).get("kept", 0)

    inputs = [json.loads(str(r["detail"])) for r in record.log if r["stage"] == "input"]
    counts = {
        "inputs": len(inputs),
        "replayed": sum(bool(d.get("replay")) for d in inputs),
        "failures": funnel.get("select", {}).get("in", 0),
        "picked": kept("select"),
        "parsed": kept("refine"),
        "agreed": kept("agreement"),
        "graded": funnel.get("band", {}).get("in", 0),
        "kept": table.num_rows,
    }
    figures = meter.figures(kept=len({p.problem_id for p in record.problems})) | {
        "status": status,
        "round": record.round_no,
    }
    preview = problems_preview(record.problems, extra=("solver_success_k", "utility", "zone"))
    path = root.table_path("synthesized_problems", synth_partition(METHOD, record.round_no))
    return StageSummary(table, counts, figures, path, markdown=synthesis_markdown(record, preview))
