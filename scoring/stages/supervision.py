"""The `supervision` stage (methods §14, issue 26 item 1): SFT traces and preference pairs chosen by difficulty.

1. Traces: for each problem the student is graded on (its current `difficulty` rows; hardest first, at most
   `max_problems`), `traces.samples` reasoning traces from each configured engine role (the teacher by default),
   through the cached Engine; each verified by the project's Verifier and step-checked (`step_checker`: exact
   arithmetic, or the teacher judging each step through the cached Engine, `teacher_steps`), with the
   student's difficulty copied in → `supervision_traces` (partition `student`). Failed engine calls go to
   `rejects` with their reason and are retried next run.
2. Selection: each configured policy decides on every trace → `supervision_selection` (`student`, `selection`).
3. Pairs: chosen/rejected pairs by every configured rule (the student's own verified rollouts; a correct teacher
   trace against a failed student rollout) → `preference_pairs` (`student`).
4. Exports: per policy and for the pairs, under `<root>/exports/<student>/supervision/<policy or pairing>/`.

Reruns are idempotent: every model call is served by the cache and every table partition is rewritten whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from engines import Completion, Engine
from engines.config import expected_revision
from scoring.config import ProjectConfig
from scoring.grading.rollouts import solve_request
from scoring.grading.verify import CheckItem, Verifier
from scoring.schemas import PREFERENCE_PAIRS, REJECTS, SUPERVISION_TRACES, to_table
from scoring.stages.difficulty import current_grades
from scoring.stages.problems import load_pool
from scoring.stages.report import CostMeter, StageSummary, markdown_table, student_partition
from scoring.stages.roles import EngineRoles, role_engine_config
from scoring.stages.rollouts import student_rollouts
from scoring.storage import DataRoot
from scoring.supervision.exports import SupervisionExport, dpo_row, sft_row, write_exports
from scoring.supervision.judge import (
    JUDGE_METHOD,
    TEACHER_JUDGE,
    StepJudgeConfig,
    judge_request,
    judged_steps,
    parse_judgement,
)
from scoring.supervision.pairs import PAIRING, PairInputs, pair_table
from scoring.supervision.policies import POLICIES, select_traces
from scoring.supervision.steps import STEP_CHECKERS, StepCheck
from scoring.supervision.traces import trace_messages, trace_request, trace_row, trace_sampling_hash
from synthesis.problem import Problem

STAGE = "supervision"
MAX_REJECT_TEXT = 500
GRADE_COLUMNS = ("problem_id", "student_revision", "n", "k", "pass_rate", "post_mean")


def supervision_dir(config: ProjectConfig, root: DataRoot) -> Path:
    """Where the student's supervision exports go: `<root>/exports/<student>/supervision/`."""
    return root.path / "exports" / config.student.id / "supervision"


def build_supervision(
    config: ProjectConfig, root: DataRoot, roles: EngineRoles, *, progress: bool = True
) -> StageSummary:
    """Collect traces, select them by every configured policy, pair the student's rollouts, and export all."""
    part = student_partition(config)
    grades = _graded(config, root)
    pool = {p.problem_id: p for p in load_pool(root)}
    hardest_first = sorted((grades[pid]["post_mean"], pid) for pid in grades if pid in pool)
    targets = [pool[pid] for _, pid in hardest_first][: config.supervision.max_problems]
    meter = CostMeter()
    with Verifier(config.verify) as verifier:
        traces, rejects, notes = _collect_traces(config, roles, targets, grades, verifier, meter, progress)
    root.write_table("supervision_traces", traces, part)
    root.write_table("rejects", to_table(rejects, REJECTS), {"origin": f"{STAGE}-{config.student.id}"})
    selections = _select(config, root, traces)
    pairs = _pairs(config, root, {pid: grade for pid, grade in grades.items() if pid in pool}, traces)
    exported = _export(config, root, traces, selections, pairs, pool)
    status = "ok" if targets else "no graded problems for this student: materialize rollouts and difficulty first"
    return _summary(config, root, traces, selections, pairs, exported, meter, notes | {"status": status})


def _graded(config: ProjectConfig, root: DataRoot) -> dict[str, dict[str, Any]]:
    """The student's current difficulty rows with at least one graded rollout, by problem id."""
    rows = current_grades(config, root).select(list(GRADE_COLUMNS)).to_pylist()
    return {r["problem_id"]: r for r in rows if r["n"]}


def _collect_traces(
    config: ProjectConfig,
    roles: EngineRoles,
    problems: Sequence[Problem],
    grades: dict[str, dict[str, Any]],
    verifier: Verifier,
    meter: CostMeter,
    progress: bool,
) -> tuple[pa.Table, list[dict[str, object]], dict[str, str]]:
    """Every role's traces as `supervision_traces` rows, the failed calls as `rejects` rows, and notes on roles
    skipped because another listed role is served by the same engine (its samples would be the same texts)."""
    sup = config.supervision
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, object]] = []
    notes: dict[str, str] = {}
    seen: dict[object, str] = {}
    for role in sup.roles:
        engine_config = role_engine_config(config, role)
        if engine_config in seen:
            notes[f"skipped_role_{role}"] = f"same engine as role {seen[engine_config]!r}: identical samples"
            continue
        seen[engine_config] = role
        if not problems:
            continue
        engine = roles.get(role)
        meter.watch(engine)
        judge = roles.get(sup.step_judge.role) if sup.step_checker == TEACHER_JUDGE else None
        if judge is not None:
            meter.watch(judge)
        role_rows, role_rejects = _role_traces(config, role, engine, judge, problems, grades, verifier, progress)
        rows += role_rows
        rejects += role_rejects
    rows.sort(key=lambda r: (r["problem_id"], r["role"], r["sample_index"]))
    return to_table(rows, SUPERVISION_TRACES), rejects, notes


def _role_traces(
    config: ProjectConfig,
    role: str,
    engine: Engine,
    judge: Engine | None,
    problems: Sequence[Problem],
    grades: dict[str, dict[str, Any]],
    verifier: Verifier,
    progress: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, object]]]:
    """One role's traces, verified and step-checked (by the configured checker, or by `judge` when the teacher
    judges steps), and the rejects: failed trace calls and failed judgements."""
    sup = config.supervision
    requests = [trace_request(p, sup.traces) for p in problems]
    completions = engine.generate(requests, progress=progress, desc=f"supervision: {role} traces")
    answered = [(p, c) for p, group in zip(problems, completions, strict=True) for c in group if c.ok]
    verdicts = verifier.check([CheckItem(p.answer, c.text, p) for p, c in answered])
    identity = {
        "student_id": config.student.id,
        "role": role,
        "model_id": engine.model_id,
        "model_revision": engine.model_revision,
        "sampling_hash": trace_sampling_hash(sup.traces),
        "prompt_version": sup.traces.prompt,
        "verifier_version": verifier.version,
    }
    if judge is None:
        checks, judge_rejects = [STEP_CHECKERS.get(sup.step_checker)(c.text) for _, c in answered], []
    else:
        checks, judge_rejects = _judged(judge, role, answered, sup.step_judge, progress)
    rows = [
        trace_row(p, c, v, identity=identity, grade=grades[p.problem_id], steps=check)
        for (p, c), v, check in zip(answered, verdicts, checks, strict=True)
    ]
    rejects: list[dict[str, object]] = [
        {
            "stage": STAGE,
            "input_ref": f"{p.problem_id}#{role}#{c.sample_index}",
            "reason": f"engine: {c.error}",
            "raw_text": "",
        }
        for p, group in zip(problems, completions, strict=True)
        for c in group
        if not c.ok
    ]
    return rows, rejects + judge_rejects


def _judged(
    judge: Engine,
    role: str,
    answered: list[tuple[Problem, Completion]],
    config: StepJudgeConfig,
    progress: bool,
) -> tuple[list[StepCheck], list[dict[str, object]]]:
    """The judge's step check of every trace (one cached call per trace with steps) and a reject row per failed
    judgement (an engine error, retried next run, or a reply that does not judge every step once)."""
    split = [judged_steps(c.text, config) for _, c in answered]
    asked = [i for i, (steps, _) in enumerate(split) if steps]
    requests = [judge_request(answered[i][0].question, split[i][0], config) for i in asked]
    replies = dict(zip(asked, judge.generate(requests, progress=progress, desc="supervision: step judge"), strict=True))
    checks, rejects = [], []
    for i, ((problem, completion), (steps, truncated)) in enumerate(zip(answered, split, strict=True)):
        reply = replies[i][0] if i in replies else None
        if reply is not None and not reply.ok:
            check = StepCheck(JUDGE_METHOD, len(steps), 0, 0, 0, 0, None, truncated, failure=f"engine: {reply.error}")
        else:
            check = parse_judgement(reply.text if reply is not None else "", steps, truncated=truncated)
        if check.failure is not None:
            rejects.append(
                {
                    "stage": STAGE,
                    "input_ref": f"{problem.problem_id}#{role}#{completion.sample_index}#step_judge",
                    "reason": f"step judge: {check.failure}",
                    "raw_text": reply.text[:MAX_REJECT_TEXT] if reply is not None else "",
                }
            )
        checks.append(check)
    return checks, rejects


def _select(config: ProjectConfig, root: DataRoot, traces: pa.Table) -> dict[str, pa.Table]:
    """Each configured policy's decisions, written to its `selection=<policy>` partition."""
    out = {}
    for policy in config.supervision.selection.policies:
        method = POLICIES.method(policy)
        out[method] = select_traces(traces, policy, config.supervision.selection, student_id=config.student.id)
        root.write_table("supervision_selection", out[method], {**student_partition(config), "selection": method})
    return out


def _pairs(
    config: ProjectConfig, root: DataRoot, grades: dict[str, dict[str, Any]], traces: pa.Table
) -> dict[str, pa.Table]:
    """Preference pairs of every configured rule, by method: the student's current rollouts on the graded pool
    problems in `grades` (and, for teacher-vs-student pairs, this run's traces); written together to the
    student's `preference_pairs` partition (empty when pairs are switched off)."""
    pairing = config.supervision.pairs
    out: dict[str, pa.Table] = {}
    if pairing.enabled:
        revision = expected_revision(config.student.engine, root.models_dir)
        inputs = PairInputs(student_rollouts(config, root, revision), grades, traces)
        for rule in pairing.rules:
            out[PAIRING.method(rule)] = pair_table(rule, inputs, pairing, student_id=config.student.id)
    table = pa.concat_tables(out.values()) if out else to_table([], PREFERENCE_PAIRS)
    root.write_table("preference_pairs", table, student_partition(config))
    return out


def _export(
    config: ProjectConfig,
    root: DataRoot,
    traces: pa.Table,
    selections: dict[str, pa.Table],
    pairs: dict[str, pa.Table],
    pool: dict[str, Problem],
) -> dict[str, list[SupervisionExport]]:
    """SFT exports per policy and DPO exports of the pairs, by export name."""
    out_dir, formats = supervision_dir(config, root), config.supervision.formats
    by_key = {(r["problem_id"], r["role"], r["model_id"], r["sample_index"]): r for r in traces.to_pylist()}
    source = {"student_id": config.student.id, "traces_sampling_hash": trace_sampling_hash(config.supervision.traces)}
    written: dict[str, list[SupervisionExport]] = {}
    for policy, selection in selections.items():
        rows = []
        for chosen in sorted((r for r in selection.to_pylist() if r["kept"]), key=lambda r: r["position"]):
            trace = by_key[(chosen["problem_id"], chosen["role"], chosen["model_id"], chosen["sample_index"])]
            problem = pool[chosen["problem_id"]]
            prompt = trace_messages(problem.question, trace["prompt_version"])
            rows.append(sft_row(trace, prompt, policy=policy, position=chosen["position"], answer=problem.answer))
        written[policy] = write_exports(
            rows, out_dir / policy, formats, kind="sft", source={**source, "policy": policy}
        )
    for method, table in pairs.items():
        rows = []
        for pair in table.to_pylist():
            problem = pool[pair["problem_id"]]
            request = solve_request(problem, config.rollouts, count=1)  # the student's prompt, for both kinds
            prompt = [{"role": m.role, "content": m.content} for m in request.messages]
            rows.append(dpo_row(pair, prompt, answer=problem.answer))
        pair_source = {**source, "pairing": method, "student_prompt": config.rollouts.prompt}
        written[method] = write_exports(rows, out_dir / method, formats, kind="dpo", source=pair_source)
    return written


def _summary(
    config: ProjectConfig,
    root: DataRoot,
    traces: pa.Table,
    selections: dict[str, pa.Table],
    pairs: dict[str, pa.Table],
    exported: dict[str, list[SupervisionExport]],
    meter: CostMeter,
    notes: dict[str, str],
) -> StageSummary:
    verdicts = Counter(traces.column("verdict").to_pylist())
    rates = [r for r in traces.column("step_error_rate").to_pylist() if r is not None]
    counts = {
        "problems_traced": len(set(traces.column("problem_id").to_pylist())),
        "traces": traces.num_rows,
        "traces_checked": sum(1 for n in traces.column("n_checked_steps").to_pylist() if n),
        "preference_pairs": sum(t.num_rows for t in pairs.values()),
        **{f"pairs_{method}": t.num_rows for method, t in pairs.items()},
        **{f"traces_{v}": verdicts[v] for v in sorted(verdicts)},
        **{f"kept_{p}": sum(t.column("kept").to_pylist()) for p, t in selections.items()},
    }
    figures: dict[str, float | int | str] = {**meter.figures(), **notes}
    if rates:
        figures["mean_step_error_rate"] = round(sum(rates) / len(rates), 4)
    markdown = {
        "policies": markdown_table([_policy_row(p, t) for p, t in selections.items()], POLICY_COLUMNS),
        "exports": markdown_table(
            [
                {"export": n, "format": e.format, "rows": e.rows, "path": str(e.path)}
                for n, es in exported.items()
                for e in es
            ],
            ("export", "format", "rows", "path"),
        ),
    }
    if traces.num_rows:
        columns = ("problem_id", "role", "verdict", "step_error_rate", "n_steps", "pass_rate", "first_step_error")
        markdown["preview"] = markdown_table(traces.slice(0, 5).select(list(columns)).to_pylist(), columns)
    path = root.table_path("supervision_traces", student_partition(config))
    return StageSummary(traces, counts, figures, path, markdown=markdown)


POLICY_COLUMNS = ("policy", "kept", "dropped", "correct_share", "mean_step_error_rate", "mean_pass_rate")


def _policy_row(policy: str, selection: pa.Table) -> dict[str, object]:
    """One policy's selection in numbers: what it kept, and the kept traces' correctness, step errors, difficulty."""
    kept = [r for r in selection.to_pylist() if r["kept"]]

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "policy": policy,
        "kept": len(kept),
        "dropped": selection.num_rows - len(kept),
        "correct_share": mean([float(r["verdict"] == "correct") for r in kept]),
        "mean_step_error_rate": mean([r["step_error_rate"] for r in kept if r["step_error_rate"] is not None]),
        "mean_pass_rate": mean([r["pass_rate"] for r in kept]),
    }
