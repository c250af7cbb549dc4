"""Synthesis yield per method: problems requested → parsed → solvable → in the learnable band, and tokens spent
per kept problem, read from a data root's `synthesis_log` and `synthesized_problems` (methods §7–§10, §13).

    python bench/synthesis_yield.py --data-root .gradus [--student qwen15-coder]
    python bench/synthesis_yield.py --data-root /tmp/sq --run scalequest \
        --model qwen2.5-coder-0.5b-instruct-q4_k_m --questions 16 [--models-dir .gradus/models]

Every method that wrote to `synthesis_log` shows up (ScaleQuest, GLAN, Socratic-Zero, restructuring, STAT-Syn).
Methods name their filters differently, so each column counts the candidates kept by the stages listed in the
`stages` column: "parsed" = a parse/language/format stage, "solvable" = a solvability or answer-agreement
stage; a method without such a stage shows "–". `requested` is the number of distinct candidates the method
logged. "learnable" counts accepted problems whose pass rate on the student lies strictly inside
(too_hard, too_easy) = (0.1, 0.9): the measured `difficulty` row of the student when the pool was graded,
else the pass rate the method itself recorded (ScaleQuest's difficulty step); "graded" says for how many a pass
rate was known. Tokens are all prompt + completion tokens the method's log rows record (cached calls included,
so the figure is what producing the data costs, not what this run paid).

`--run scalequest` first runs `scoring.stages.scalequest.build_scalequest` with the embedded model as generator,
teacher and student (small token caps; see `run_scalequest`), then reports.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.storage import DataRoot  # noqa: E402

PARSED = re.compile(r"parse|language|format")
SOLVABLE = re.compile(r"solvab|agreement|majority|answer")
# Stage names read in each method's stage module (they may change); other methods fall back to the patterns.
KNOWN_STAGES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "scalequest": (("language",), ("solvable",)),
    "glan": (("question",), ("agreement",)),
    "socratic": (("refine",), ("agreement",)),
}


@dataclass(frozen=True)
class Yield:
    method: str
    requested: int
    parsed: int | None
    solvable: int | None
    kept: int
    graded: int
    learnable: int
    tokens: int
    stages: str


def _stages(method: str, stages: list[str], pattern: re.Pattern[str], which: int) -> list[str]:
    known = KNOWN_STAGES.get(method)
    wanted = known[which] if known is not None else tuple(s for s in stages if pattern.search(s))
    return [s for s in stages if s in wanted]


def _passed(rows: list[dict], stages: list[str]) -> int | None:
    """Candidates kept by one of `stages` and rejected by none of them (stages in sequence, or parallel branches
    such as restructuring's `simplified.parse` / `diversified.parse`); None when the method has no such stage."""
    if not stages:
        return None
    kept = {(r["round"], r["item_id"]) for r in rows if r["stage"] in stages and r["kept"]}
    rejected = {(r["round"], r["item_id"]) for r in rows if r["stage"] in stages and not r["kept"]}
    return len(kept - rejected)


def student_pass_rates(root: DataRoot, student: str | None) -> dict[str, float]:
    """Measured pass rates (not predictions) from the `difficulty` table, for one student or all."""
    table = root.read_all_partitions("difficulty")
    rates: dict[str, float] = {}
    for row in table.to_pylist():
        if row["n"] and (student is None or row["student_id"] == student) and row["pass_rate"] is not None:
            rates[row["problem_id"]] = float(row["pass_rate"])
    return rates


def method_yields(
    root: DataRoot, *, student: str | None = None, too_hard: float = 0.1, too_easy: float = 0.9
) -> list[Yield]:
    """One `Yield` per method found in `synthesis_log` (rounds summed)."""
    log = root.read_all_partitions("synthesis_log").to_pylist()
    problems = root.read_all_partitions("synthesized_problems").to_pylist()
    measured = student_pass_rates(root, student)
    by_method: dict[str, list[dict]] = defaultdict(list)
    for row in log:
        by_method[row["method"]].append(row)
    yields = []
    for method, rows in sorted(by_method.items()):
        stages = list(dict.fromkeys(r["stage"] for r in rows))
        parse_stages = _stages(method, stages, PARSED, 0)
        solve_stages = _stages(method, stages, SOLVABLE, 1)
        accepted = [p for p in problems if p["method"] == method]
        rates = [_pass_rate(p, measured) for p in accepted]
        known = [r for r in rates if r is not None]
        yields.append(
            Yield(
                method=method,
                requested=len({(r["round"], r["item_id"]) for r in rows if r["stage"] == stages[0]}),
                parsed=_passed(rows, parse_stages),
                solvable=_passed(rows, solve_stages),
                kept=len(accepted),
                graded=len(known),
                learnable=sum(too_hard < r < too_easy for r in known),
                tokens=sum(int(r["prompt_tokens"] or 0) + int(r["completion_tokens"] or 0) for r in rows),
                stages=f"{stages[0]} / {','.join(parse_stages) or '–'} / {','.join(solve_stages) or '–'}",
            )
        )
    return yields


def _pass_rate(problem: dict, measured: dict[str, float]) -> float | None:
    if problem["problem_id"] in measured:
        return measured[problem["problem_id"]]
    try:
        rate = json.loads(problem["metadata"] or "{}").get("pass_rate")
    except json.JSONDecodeError:
        return None
    return float(rate) if isinstance(rate, int | float) else None


def yield_table(yields: list[Yield]) -> str:
    """The report as a markdown table."""
    lines = [
        "| method | requested | parsed | solvable | kept | learnable (of graded) | tokens | tokens / kept | stages "
        "(requested / parsed / solvable) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for y in yields:
        per_kept = f"{y.tokens / y.kept:,.0f}" if y.kept else "–"
        lines.append(
            f"| {y.method} | {y.requested} | {_n(y.parsed)} | {_n(y.solvable)} | {y.kept} | "
            f"{y.learnable} ({y.graded}) | {y.tokens:,} | {per_kept} | {y.stages} |"
        )
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "–" if value is None else str(value)


def run_scalequest(args: argparse.Namespace, root: DataRoot) -> dict[str, object]:
    """Run the ScaleQuest stage with one embedded model in all three roles; returns its counts, figures and
    markdown blocks.

    Token caps are small for a CPU: questions 64, solvability replies 96, 3 responses of 160, and `--rollouts`
    answer-only student rollouts of 48 tokens for the pass rate."""
    from engines.config import EngineConfig, build_engine
    from scoring.config import ProjectConfig
    from scoring.stages.roles import EngineRoles
    from scoring.stages.scalequest import build_scalequest

    engine_config = EngineConfig(model=args.model, n_ctx=1024)
    project = ProjectConfig.model_validate(
        {
            "data_root": str(root.path),
            "student": {"id": args.student or "bench-student", "engine": engine_config.model_dump()},
            "rollouts": {"k": args.rollouts, "max_tokens": 48, "prompt": "answer_only_v1"},
            "synthesis": {
                "scalequest": {
                    "enabled": True,
                    "questions": args.questions,
                    "seed": args.seed,
                    "max_question_tokens": 64,
                    "solvability_max_tokens": 96,
                    "responses": 3,
                    "max_response_tokens": 160,
                }
            },
        }
    )
    models = Path(args.models_dir) if args.models_dir else root.models_dir
    with build_engine(engine_config, models, root.cache_path) as engine:
        roles = EngineRoles(project, root, overrides={"student": engine, "teacher": engine, "generator": engine})
        started = time.perf_counter()
        summary = build_scalequest(project, root, roles, progress=True)
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), **summary.counts, **summary.figures, **summary.markdown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--student", default=None, help="student id for measured pass rates (default: any)")
    parser.add_argument("--run", choices=["scalequest"], default=None, help="run a method first")
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m", help="embedded model for --run")
    parser.add_argument("--models-dir", default=None, help="where the GGUF lives (default: <data root>/models)")
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--rollouts", type=int, default=4, help="student rollouts per question for --run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = DataRoot(Path(args.data_root))
    if args.run == "scalequest":
        figures = run_scalequest(args, root)
        for key in (
            "seconds",
            "model_calls",
            "cache_hits",
            "prompt_tokens",
            "completion_tokens",
            "tokens_spent",
            "tokens_per_kept_problem",
        ):
            print(f"{key}: {figures.get(key)}")
        print(f"\n{figures['funnel']}\n\n{figures['reject_reasons']}\n\n{figures['preview']}\n")
    yields = method_yields(root, student=args.student)
    print(yield_table(yields) if yields else f"no synthesis_log in {root.path}")


if __name__ == "__main__":
    main()
