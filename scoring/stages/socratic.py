"""Socratic-Zero rounds as a stage (methods §10; Wang et al., arXiv 2509.24726).

Round r takes its inputs — round 1: `seeds` problems of the pool (D_0); round r > 1: the problems round r-1
accepted plus a replayed share of earlier rounds' items — and their student rollouts. The failed rollouts F are
refined by the teacher into (q', reference solution, answer); the answer must pass the agreement check; q' is
graded on the student with k attempts, and kept by its utility U = exp(-(s-µ)²/(2σ²)) (or a band on s). Every
candidate's every step is a row of `synthesis_log` (method `socratic`, the round's partition), accepted problems go
to `synthesized_problems`, and their grading rollouts to the student's `rollouts`, where round r+1 reads them.

Rounds are idempotent: each reads only stored tables and seeded, cached model calls, so a rerun makes no model call
and rewrites identical tables.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace

import pyarrow as pa
import pyarrow.compute as pc

from engines import Engine
from engines.engine import EngineStats
from engines.errors import ConfigError
from scoring.config import ProjectConfig
from scoring.grading.agreement import check_answers
from scoring.grading.rollouts import RolloutConfig, run_rollouts, sampling_hash
from scoring.grading.verify import Verifier
from scoring.schemas import AUDIT_KEY, ROLLOUT_KEY
from scoring.stages.pipeline import StageSummary, load_pool, load_problems, student_partition
from scoring.stages.roles import EngineRoles
from scoring.stages.synthesis_log import SynthesisRecord, funnel_markdown, synth_partition
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
    select_replay,
    select_seeds,
)
from synthesis.structured import ParseError

METHOD = "socratic"
FAILED_VERDICTS = ("wrong", "unparseable")  # timeout/error say nothing about the student (design.md, Verdicts)
UNGRADED_VERDICTS = ("timeout", "error")
MAX_FAILED_SOLUTION_CHARS = 1_000


@dataclass(frozen=True, slots=True)
class RoundInput:
    problem: Problem
    origin: str  # "seed" or "round <r>"
    replay: bool


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
    started = time.perf_counter()
    socratic = config.synthesis.socratic
    record = SynthesisRecord(METHOD, round_no)
    engines = distinct_engines([roles.student, roles.teacher])
    before = [replace(e.stats) for e in engines]
    inputs, status = round_inputs(config, root, round_no)
    if status:
        return _finish(record, root, engines, before, started, status=status)
    with Verifier(config.verify) as verifier:
        run = _Run(config, root, roles, record, verifier, progress)
        rollouts = input_rollouts(config, root, roles.student, [i.problem for i in inputs], verifier, progress)
        failures = _log_inputs(record, inputs, rollouts)
        picked = pick_failures(failures, socratic.failures_per_round, seed=socratic.seed, round_no=round_no)
        _log_selection(record, failures, picked, socratic)
        refined = _refine(run, picked, {i.problem.problem_id: i.problem for i in inputs})
        _grade(run, _agree(run, refined))
    return _finish(record, root, engines, before, started, status="ok")


# --- inputs ------------------------------------------------------------------------------------------------------


def round_inputs(config: ProjectConfig, root: DataRoot, round_no: int) -> tuple[list[RoundInput], str]:
    """The round's input problems, or ([], why there are none). Round 1: a seeded sample of the pool's non-synthesized
    problems (no generator model, no parent), so the seeds stay put when synthesized problems join the pool. Round
    r > 1: round r-1's accepted problems plus `replay_share` of the history (the seeds and rounds 1..r-2's
    accepted problems)."""
    socratic = config.synthesis.socratic
    if round_no == 1:
        seedable = [p for p in load_pool(root) if p.generator_model is None and p.parent_id is None]
        if not seedable:
            return [], "no seed problems: the pool has no imported or procedural problems (run `problems` first)"
        chosen = set(select_seeds([p.problem_id for p in seedable], socratic.seeds, seed=socratic.seed))
        return [RoundInput(p, "seed", False) for p in sorted(seedable, key=_pid) if p.problem_id in chosen], ""
    previous = synth_partition(METHOD, round_no - 1)
    if not root.table_path("synthesized_problems", previous).exists():
        return [], f"round {round_no - 1} has not been run; run it before round {round_no}"
    fresh = accepted_problems(root, round_no - 1)
    if not fresh:
        return [], f"round {round_no - 1} accepted no problems, so round {round_no} has nothing to refine"
    history = {p.problem_id: RoundInput(p, "seed", True) for p in round_seeds(root)}
    for earlier in range(1, round_no - 1):
        history |= {p.problem_id: RoundInput(p, f"round {earlier}", True) for p in accepted_problems(root, earlier)}
    current = [RoundInput(p, f"round {round_no - 1}", False) for p in sorted(fresh, key=_pid)]
    new_ids = {i.problem.problem_id for i in current}
    eligible = [pid for pid in history if pid not in new_ids]
    replayed = select_replay(eligible, socratic.replay_share, seed=socratic.seed, round_no=round_no)
    return current + [history[pid] for pid in replayed], ""


def accepted_problems(root: DataRoot, round_no: int) -> list[Problem]:
    """The problems Socratic round `round_no` accepted (its `synthesized_problems` partition)."""
    table = root.read_table("synthesized_problems", synth_partition(METHOD, round_no))
    return [Problem(**{k: v for k, v in row.items() if k not in ("method", "round")}) for row in table.to_pylist()]


def round_seeds(root: DataRoot) -> list[Problem]:
    """Round 1's seeds, as logged (stage `input` of round 1), looked up in the `problems` table."""
    log = root.read_table("synthesis_log", synth_partition(METHOD, 1))
    ids = set(log.filter(pc.equal(log.column("stage"), "input")).column("item_id").to_pylist())
    return sorted((p for p in load_problems(root) if p.problem_id in ids), key=_pid)


def grading_config(config: ProjectConfig) -> RolloutConfig:
    """The project's rollout config with `k` = socratic.k; `k` is not in the sampling hash, so these rollouts are
    the student's ordinary evidence (same hash, same cache keys as the `rollouts` stage)."""
    return config.rollouts.model_copy(update={"k": config.synthesis.socratic.k})


def input_rollouts(
    config: ProjectConfig,
    root: DataRoot,
    student: Engine,
    problems: Sequence[Problem],
    verifier: Verifier,
    progress: bool,
) -> pa.Table:
    """The inputs' stored student rollouts (this revision and sampling config, samples below k, engine errors
    left out); problems with none are rolled out now with k = socratic.k and stored."""
    grading = grading_config(config)
    stored = stored_rollouts(config, root, student.model_revision, grading)
    have = set(stored.column("problem_id").to_pylist())
    missing = [p for p in problems if p.problem_id not in have]
    if missing:
        result = run_rollouts(
            missing, student, student_id=config.student.id, config=grading, verifier=verifier, progress=progress
        )
        store_rollouts(config, root, result.rollouts, result.audit)
        stored = stored_rollouts(config, root, student.model_revision, grading)
    wanted = pa.array([p.problem_id for p in problems], pa.string())
    return stored.filter(pc.is_in(stored.column("problem_id"), value_set=wanted))


def stored_rollouts(config: ProjectConfig, root: DataRoot, revision: str, grading: RolloutConfig) -> pa.Table:
    rollouts = root.read_table("rollouts", student_partition(config))
    mask = pc.and_(
        pc.and_(
            pc.equal(rollouts.column("student_revision"), revision),
            pc.equal(rollouts.column("sampling_hash"), sampling_hash(grading)),
        ),
        pc.and_(
            pc.less(rollouts.column("sample_index"), grading.k),
            pc.not_equal(rollouts.column("finish_reason"), "error"),
        ),
    )
    return rollouts.filter(mask).sort_by([("problem_id", "ascending"), ("sample_index", "ascending")])


def store_rollouts(config: ProjectConfig, root: DataRoot, rollouts: pa.Table, audit: pa.Table) -> None:
    """Add real student rollouts to its partition (failed engine calls are not evidence and stay out)."""
    part = student_partition(config)
    ok = pc.not_equal(rollouts.column("finish_reason"), "error")
    root.upsert_table("rollouts", rollouts.filter(ok), ROLLOUT_KEY, part)
    root.upsert_table("verdict_audit", audit, AUDIT_KEY, part)


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


def _pid(problem: Problem) -> str:
    return problem.problem_id


# --- summary (shared with scoring.stages.restructure) --------------------------------------------------------------


def distinct_engines(engines: Iterable[Engine]) -> list[Engine]:
    """Each engine once (roles often share one), so their stats are not counted twice."""
    unique: dict[int, Engine] = {}
    for engine in engines:
        unique.setdefault(id(engine), engine)
    return list(unique.values())


def stats_delta(engines: Sequence[Engine], before: Sequence[EngineStats]) -> dict[str, float | int]:
    """What these engines spent since `before` (summed over engines), as `EngineStats.as_dict()`."""
    total = EngineStats()
    for engine, then in zip(engines, before, strict=True):
        for f in fields(EngineStats):
            setattr(total, f.name, getattr(total, f.name) + getattr(engine.stats, f.name) - getattr(then, f.name))
    return total.as_dict()


def reasons_markdown(record: SynthesisRecord) -> str:
    """Reject reasons (stage: reason) with their counts, most frequent first, as a markdown table."""
    lines = ["| reason | count |", "|---|---|"]
    lines += [f"| {_cell(reason)} | {n} |" for reason, n in record.reject_reasons().most_common()]
    return "\n".join(lines)


def preview_markdown(problems: Sequence[Problem], *, extra: Sequence[str] = ()) -> str:
    """The first five accepted problems as a markdown table (question cut to 160 characters)."""
    header = ["question", "answer", *extra]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for problem in problems[:5]:
        meta = json.loads(problem.metadata)
        cells = [_cell(problem.question[:160]), _cell(problem.answer), *(_cell(str(meta.get(k))) for k in extra)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_figures(
    record: SynthesisRecord, engines: Sequence[Engine], before: Sequence[EngineStats], started: float
) -> dict[str, float | int | str]:
    """The figures every synthesis stage reports: engine cost, tokens per kept problem, funnel, reasons."""
    spent = stats_delta(engines, before)
    kept = len({p.problem_id for p in record.problems})
    tokens = int(spent["prompt_tokens"]) + int(spent["completion_tokens"])
    return spent | {
        "tokens_per_kept_problem": round(tokens / kept, 1) if kept else 0.0,
        "seconds": round(time.perf_counter() - started, 3),
        "funnel_md": funnel_markdown(record),
        "reject_reasons_md": reasons_markdown(record),
    }


def _finish(
    record: SynthesisRecord,
    root: DataRoot,
    engines: Sequence[Engine],
    before: Sequence[EngineStats],
    started: float,
    *,
    status: str,
) -> StageSummary:
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
    figures = summary_figures(record, engines, before, started) | {
        "status": status,
        "round": record.round_no,
        "preview_md": preview_markdown(record.problems, extra=("solver_success_k", "utility", "zone")),
    }
    return StageSummary(
        table, counts, figures, path=root.table_path("synthesized_problems", synth_partition(METHOD, record.round_no))
    )
