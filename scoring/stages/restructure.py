"""CLPO/GHPO restructuring as a stage (methods §13): variants of the problems the student finds hard.

From the student's current grades, CLPO classes each pool problem by pass rate p: hard (p ≤ hard_below, zero
included) → a simplified rewrite, medium (hard_below < p ≤ medium_below) → a diversified paraphrase; GHPO gives
always-failed problems (p = 0) hinted variants — the question plus the first 25/50/75% of a reference solution.
Every variant keeps its parent's gold answer and `parent_id`. Rewrites must not reveal the answer and must pass the
agreement check against the parent's answer; hinted variants are deterministic text. Everything is logged in
`synthesis_log` (method `restructure`, round 0) with the stage `<kind>.<filter>`.

Problems that are themselves restructured variants are never parents again (no hints on hints), so a rerun after
the variants joined the pool selects the same parents, makes no model call and rewrites identical tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from engines import Engine
from scoring.config import ProjectConfig
from scoring.grading.agreement import check_answers, reference_agreement, solution_requests
from scoring.grading.verify import Verifier
from scoring.stages.difficulty import current_grades
from scoring.stages.problems import load_pool
from scoring.stages.report import CostMeter, StageSummary, problems_preview, synthesis_markdown
from scoring.stages.roles import EngineRoles
from scoring.stages.synthesis_log import SynthesisRecord, synth_partition
from scoring.storage import DataRoot
from synthesis.problem import Problem
from synthesis.restructure import (
    RestructureConfig,
    clean_solution,
    clpo_class,
    diversify_prompt,
    hint_kind,
    hint_prefix,
    hinted_question,
    parse_rewrite,
    reveals_answer,
    rewrite_prompt_version,
    rewrite_request,
    same_problem,
    select_parents,
    simplify_prompt,
    variant_kinds,
)
from synthesis.structured import ParseError

METHOD = "restructure"
REWRITES = ("simplified", "diversified")


@dataclass(frozen=True, slots=True)
class Parent:
    problem: Problem
    pass_rate: float
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rewrite:
    parent: Parent
    kind: str
    question: str


@dataclass(frozen=True, slots=True)
class Reference:
    """The solution a parent's hints are cut from: its own (`dataset`) or a verified teacher solution."""

    solution: str | None
    source: str  # "dataset" | "teacher"
    votes: str = ""  # teacher solutions that reach the gold answer, "v/k"
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class _Run:
    config: ProjectConfig
    record: SynthesisRecord
    teacher: Engine
    verifier: Verifier
    progress: bool

    @property
    def cfg(self) -> RestructureConfig:
        return self.config.synthesis.restructure


def build_restructure(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """Restructure up to `max_problems` graded pool problems (seeded choice) into CLPO rewrites and GHPO hinted
    variants; write the `restructure` partitions of `synthesis_log` and `synthesized_problems`."""
    meter = CostMeter(roles.teacher)
    record = SynthesisRecord(METHOD)
    grades = current_grades(config, root)
    parents = _select(record, config, root, grades)
    with Verifier(config.verify) as verifier:
        run = _Run(config, record, roles.teacher, verifier, progress)
        _agree(run, _rewrite(run, parents))
        hinted = [p for p in parents if any(k.startswith("hint_") for k in p.kinds)]
        references = _references(run, hinted)
        for parent in hinted:
            _hint_variants(run, parent, references[parent.problem.problem_id])
    return _summary(record, root, meter, grades, parents)


def _summary(
    record: SynthesisRecord, root: DataRoot, meter: CostMeter, grades: pa.Table, parents: Sequence[Parent]
) -> StageSummary:
    """Write the run's partitions and sum it up: the funnel per variant kind as counts, cost, and markdown."""
    _, table = record.write(root)
    funnel = record.funnel()

    def total(filter_name: str, column: str = "kept") -> int:
        return sum(funnel.get(f"{kind}.{filter_name}", {}).get(column, 0) for kind in REWRITES)

    kinds = [json.loads(p.metadata)["kind"] for p in record.problems]
    counts = {
        "graded": grades.num_rows,
        "candidates": funnel.get("select", {}).get("in", 0),
        "selected": len(parents),
        "rewrites": total("parse", "in"),
        "parsed": total("parse"),
        "no_leak": total("leak"),
        "agreed": total("agreement"),
        "hinted": sum(k.startswith("hint_") for k in kinds),
        "kept": table.num_rows,
    } | {f"kept_{kind}": kinds.count(kind) for kind in sorted(set(kinds))}
    figures = meter.figures(kept=len({p.problem_id for p in record.problems})) | {
        "status": "ok" if parents else "no graded pool problem is hard, medium or always failed",
    }
    preview = problems_preview(record.problems, extra=("kind", "parent_pass_rate"))
    path = root.table_path("synthesized_problems", synth_partition(METHOD))
    return StageSummary(table, counts, figures, path, markdown=synthesis_markdown(record, preview))


def _select(record: SynthesisRecord, config: ProjectConfig, root: DataRoot, grades: pa.Table) -> list[Parent]:
    """Graded pool problems that get at least one variant (restructured ones excluded), then a seeded choice."""
    cfg = config.synthesis.restructure
    rates = {
        row["problem_id"]: float(row["pass_rate"])
        for row in grades.select(["problem_id", "pass_rate"]).to_pylist()
        if row["pass_rate"] is not None
    }
    candidates = [
        Parent(p, rates[p.problem_id], tuple(variant_kinds(rates[p.problem_id], cfg)))
        for p in sorted(load_pool(root), key=lambda p: p.problem_id)
        if p.problem_id in rates and p.source != METHOD and variant_kinds(rates[p.problem_id], cfg)
    ]
    chosen = set(select_parents([c.problem.problem_id for c in candidates], cfg.max_problems, seed=cfg.seed))
    for candidate in candidates:
        kept = candidate.problem.problem_id in chosen
        record.decide(
            "select",
            candidate.problem.problem_id,
            kept=kept,
            reason="" if kept else f"not picked (max_problems = {cfg.max_problems})",
            text=candidate.problem.question,
            detail=_parent_detail(candidate, cfg),
        )
    return [c for c in candidates if c.problem.problem_id in chosen]


def _parent_detail(parent: Parent, cfg: RestructureConfig) -> dict[str, object]:
    return {"pass_rate": parent.pass_rate, "clpo_class": clpo_class(parent.pass_rate, cfg), "kinds": list(parent.kinds)}


# --- CLPO rewrites ----------------------------------------------------------------------------------------------


def _rewrite(run: _Run, parents: Sequence[Parent]) -> list[Rewrite]:
    """Ask the teacher for each simplified/diversified variant; parse, then reject copies and answer leaks."""
    jobs = [(parent, kind) for parent in parents for kind in parent.kinds if kind in REWRITES]
    prompts = [
        simplify_prompt(p.problem.question, p.problem.answer)
        if kind == "simplified"
        else diversify_prompt(p.problem.question)
        for p, kind in jobs
    ]
    requests = [rewrite_request(prompt, run.cfg) for prompt in prompts]
    completions = run.teacher.generate(requests, progress=run.progress, desc="restructure: rewriting")
    rewrites: list[Rewrite] = []
    for (parent, kind), (completion,) in zip(jobs, completions, strict=True):
        question, reason = None, f"engine error: {completion.error}"
        if completion.ok:
            try:
                question, reason = parse_rewrite(completion.text), ""
            except ParseError as exc:
                reason = exc.reason
        if question is not None and same_problem(question, parent.problem.question):
            question, reason = None, "identical to the parent"
        common = {
            "parent_id": parent.problem.problem_id,
            "model": run.teacher.model_id,
            "prompt_version": rewrite_prompt_version(kind),
            "detail": _parent_detail(parent, run.cfg) | {"kind": kind},
        }
        item = f"{parent.problem.problem_id}:{kind}"
        run.record.decide(
            f"{kind}.parse",
            item,
            kept=question is not None,
            reason=reason,
            text=question or completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            **common,
        )
        if question is None:
            continue
        leaks = reveals_answer(question, parent.problem.question, parent.problem.answer)
        reason = "reveals the answer" if leaks else ""
        run.record.decide(f"{kind}.leak", item, kept=not leaks, reason=reason, text=question, **common)
        if not leaks:
            rewrites.append(Rewrite(parent, kind, question))
    return rewrites


def _agree(run: _Run, rewrites: Sequence[Rewrite]) -> None:
    """k teacher solutions of each rewrite must reach the parent's answer (reference agreement)."""
    if not rewrites:
        return
    items = [(r.question, r.parent.problem.answer) for r in rewrites]
    answers = run.config.synthesis.answers
    results = check_answers(items, run.teacher, run.verifier, answers, seed=run.cfg.seed, progress=run.progress)
    for rewrite, agreement in zip(rewrites, results, strict=True):
        parent, kind = rewrite.parent, rewrite.kind
        extra = {"votes": agreement.votes, "k": agreement.k, "prompt_version": rewrite_prompt_version(kind)}
        variant = _variant(run, parent, kind, rewrite.question, ["agreement", "no_leak"], extra, teacher_wrote=True)
        run.record.decide(
            f"{kind}.agreement",
            variant.problem_id,
            kept=agreement.accepted,
            reason="" if agreement.accepted else agreement.reason,
            text=rewrite.question,
            parent_id=parent.problem.problem_id,
            model=run.teacher.model_id,
            detail=_parent_detail(parent, run.cfg) | {"kind": kind} | agreement.detail(),
        )
        if agreement.accepted:
            run.record.accept(variant)


# --- GHPO hints -------------------------------------------------------------------------------------------------


def _references(run: _Run, parents: Sequence[Parent]) -> dict[str, Reference]:
    """Each parent's reference solution: its own when it has one, else the first of k teacher solutions that
    reaches the gold answer (checked by the verifier, `scoring.grading.agreement.reference_agreement`; one suffices)."""
    references = {
        p.problem.problem_id: Reference(p.problem.solution, "dataset")
        for p in parents
        if p.problem.solution and clean_solution(p.problem.solution)
    }
    missing = [p for p in parents if p.problem.problem_id not in references]
    if not missing:
        return references
    answers = run.config.synthesis.answers
    requests = solution_requests([p.problem.question for p in missing], answers, seed=run.cfg.seed)
    groups = run.teacher.generate(requests, progress=run.progress, desc="restructure: reference solutions")
    for parent, group in zip(missing, groups, strict=True):
        texts = [c.text for c in group if c.ok]
        agreement = reference_agreement(parent.problem.answer, texts, run.verifier, min_votes=1)
        references[parent.problem.problem_id] = Reference(
            texts[agreement.agreeing[0]] if agreement.agreeing else None,
            "teacher",
            f"{agreement.votes}/{agreement.k}",
            sum(c.prompt_tokens + c.completion_tokens for c in group),
        )
    return references


def _hint_variants(run: _Run, parent: Parent, reference: Reference) -> None:
    """GHPO's hinted prompts for one always-failed parent, one per configured share (no model call)."""
    pid, detail = parent.problem.problem_id, _parent_detail(parent, run.cfg)
    run.record.decide(
        "hint.reference",
        pid,
        kept=reference.solution is not None,
        reason="" if reference.solution else f"no teacher solution reaches the gold answer ({reference.votes})",
        text=reference.solution or "",
        parent_id=pid,
        model=run.teacher.model_id if reference.source == "teacher" else None,
        completion_tokens=reference.tokens,
        detail=detail | {"reference_source": reference.source, "votes": reference.votes},
    )
    if reference.solution is None:
        return
    for share, kind in ((share, hint_kind(share)) for share in run.cfg.hints):
        prefix = hint_prefix(reference.solution, share)
        question = hinted_question(parent.problem.question, prefix) if prefix else ""
        extra = {
            "hint_share": share,
            "reference_source": reference.source,
            "prompt_version": rewrite_prompt_version(kind),
        }
        variant = None
        if prefix:
            variant = _variant(
                run,
                parent,
                kind,
                question,
                ["reference_solution"],
                extra,
                teacher_wrote=reference.source == "teacher",
                solution=clean_solution(reference.solution),
            )
        run.record.decide(
            "hint.build",
            variant.problem_id if variant else f"{pid}:{kind}",
            kept=variant is not None,
            reason="" if variant else "empty solution prefix",
            text=question,
            parent_id=pid,
            prompt_version=rewrite_prompt_version(kind),
            detail=detail | {"kind": kind, "hint_share": share, "prefix_chars": len(prefix)},
        )
        if variant is not None:
            run.record.accept(variant)


def _variant(
    run: _Run,
    parent: Parent,
    kind: str,
    question: str,
    checks: list[str],
    extra: dict[str, object],
    *,
    teacher_wrote: bool,
    solution: str | None = None,
) -> Problem:
    """A variant problem: the parent's gold answer and id, family `restructure_<kind>`, kind in metadata."""
    return Problem.create(
        source=METHOD,
        family=f"{METHOD}_{kind}",
        question=question,
        answer=parent.problem.answer,
        source_ref=f"restructure:{kind}:{parent.problem.problem_id}",
        solution=solution,
        difficulty_knob=parent.problem.difficulty_knob,
        metadata={
            "kind": kind,
            "parent_pass_rate": parent.pass_rate,
            "clpo_class": clpo_class(parent.pass_rate, run.cfg),
            "parent_source": parent.problem.source,
        }
        | extra,
        parent_id=parent.problem.problem_id,
        generator_model=run.teacher.model_id if teacher_wrote else None,
        checks_passed=checks,
    )
