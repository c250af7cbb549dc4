"""Agreement with expected verdicts: Gradus's verifier vs math-verify alone, on (gold, completion, expected) cases.

    python bench/verifier_agreement.py [--cases TABLE.jsonl ...] [--timeout 5] [--workers 2] [--out REPORT.md]

Two tables by default, each reported per category (the form of the gold answer, or the hand-written shape):
- `tests/fixtures/verifier/hand_written_regressions.jsonl`: hand-written cases in the shapes issue 25 named
  (display math after a word, ASCII relations, decimal commas, decimal approximations of fractions, matrices
  after an equation, numbers mentioned mid-solution, ordinary answers). Not an independent suite: the same person
  wrote them and the verifier rules.
- `tests/fixtures/verifier/recorded_student_completions.jsonl`: real completions of the embedded students on
  MATH-500, MATH and GSM8K problems, each citing its file and row, with expected verdicts agreed by both checkers
  or adjudicated by hand where they disagreed (`bench/record_verifier_cases.py`, `bench/label_verifier_cases.py`).
  Reported per split: `tuning` (the verifier may be fixed on it) and `held_out` (settled by a hash of the case id
  before any fix; the honest figure).

Agreement is on the binary reward (correct vs anything else), which is what grading uses. Two sides:
- `gradus`: `scoring.grading.verify.Verifier.check` (its sandboxed worker processes);
- `math-verify alone`: `math_verify.parse(completion)` with its default extraction configs, then
  `math_verify.verify(parse("\\boxed{gold}"), answer)`, in a separate spawned process with math-verify's own
  time limits (model text is never parsed in this process).
The column `decided by math_verify_full` counts Gradus verdicts taken from its full-text math-verify
candidate (`scoring.grading.full_text`). Each part ends with the cases math-verify alone gets right and Gradus
gets wrong (the verifier is meant to keep that list empty), the reverse, and the cases both get wrong.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.grading.verify import VERIFIER_VERSION, CheckItem, Verifier, VerifyConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "verifier"
DEFAULT_CASES = [FIXTURES / "hand_written_regressions.jsonl", FIXTURES / "recorded_student_completions.jsonl"]


def math_verify_alone(pair: tuple[str, str, float]) -> bool:
    """math-verify's own answer, nothing of Gradus's: default extraction on the full completion."""
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    gold, completion, timeout_s = pair
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=int(timeout_s))
    answer = parse(completion, parsing_timeout=int(timeout_s))
    return bool(gold_parsed and answer and verify(gold_parsed, answer, timeout_seconds=int(timeout_s)))


def load_cases(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def table_parts(paths: list[Path]) -> list[tuple[str, list[dict]]]:
    """(name, cases) per table part: a table with a `split` column is reported per split (tuning, held_out);
    cases without an expected verdict yet (not adjudicated) are left out, and counted in the name."""
    parts = []
    for path in paths:
        cases = load_cases(path)
        todo = sum(case.get("expected") is None for case in cases)
        suffix = f", {todo} not adjudicated left out" if todo else ""
        splits = sorted({case["split"] for case in cases if "split" in case}, reverse=True)
        for split in splits or [None]:
            chosen = [c for c in cases if c.get("expected") is not None and c.get("split") == split]
            parts.append((f"{_relative(path)}" + (f" — {split}" if split else "") + suffix, chosen))
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=Path, nargs="+", default=DEFAULT_CASES)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the report (Markdown) here")
    args = parser.parse_args()
    parts = table_parts(args.cases)
    cases = [case for _, part in parts for case in part]
    started = time.perf_counter()
    with Verifier(VerifyConfig(timeout_s=args.timeout, workers=args.workers)) as verifier:
        verdicts = verifier.check([CheckItem(case["gold"], case["completion"]) for case in cases])
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        alone = pool.map(math_verify_alone, [(c["gold"], c["completion"], args.timeout) for c in cases])
    lines = [
        "# Verifier agreement with hand-checked regression tables",
        "",
        "```",
        "python " + " ".join(["bench/verifier_agreement.py", *sys.argv[1:]]),
        "```",
        "",
        f"verifier: {VERIFIER_VERSION}; math-verify alone = `parse(completion)` + `verify(parse(\\boxed{{gold}}), …)`; "
        f"agreement on the binary reward (correct vs anything else); {time.perf_counter() - started:.0f} s wall",
    ]
    offset = 0
    for name, part in parts:
        lines += _report_part(name, part, verdicts[offset : offset + len(part)], alone[offset : offset + len(part)])
        offset += len(part)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_text(text)
        tmp.replace(args.out)


def _report_part(name: str, cases: list[dict], verdicts: list, alone: list[bool]) -> list[str]:
    expected = [case["expected"] == "correct" for case in cases]
    gradus_ok = [v.is_correct == e for v, e in zip(verdicts, expected, strict=True)]
    alone_ok = [a == e for a, e in zip(alone, expected, strict=True)]
    only_alone = [i for i in range(len(cases)) if alone_ok[i] and not gradus_ok[i]]
    only_gradus = [i for i in range(len(cases)) if gradus_ok[i] and not alone_ok[i]]
    both_wrong = [i for i in range(len(cases)) if not alone_ok[i] and not gradus_ok[i]]
    by_full = [v.rule == "math_verify_full" for v in verdicts]
    lines = [
        "",
        f"## {name} ({len(cases)} cases)",
        "",
        "| category | cases | expected correct | gradus agrees | math-verify alone agrees "
        "| math-verify right, gradus wrong | decided by `math_verify_full` |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for category in sorted({case["category"] for case in cases}):
        idx = [i for i, case in enumerate(cases) if case["category"] == category]
        lines.append(
            f"| {category} | {len(idx)} | {sum(expected[i] for i in idx)} | {sum(gradus_ok[i] for i in idx)} "
            f"| {sum(alone_ok[i] for i in idx)} | {sum(i in only_alone for i in idx)} "
            f"| {sum(by_full[i] for i in idx)} |"
        )
    n = max(len(cases), 1)
    lines.append(
        f"| **all** | {len(cases)} | {sum(expected)} | {sum(gradus_ok)} ({sum(gradus_ok) / n:.1%}) "
        f"| {sum(alone_ok)} ({sum(alone_ok) / n:.1%}) | {len(only_alone)} | {sum(by_full)} |"
    )
    if all("student" in case for case in cases):  # a recorded table: the same figures by source and student
        lines += ["", "| source / student | cases | gradus agrees | math-verify alone agrees |", "|---|---:|---:|---:|"]
        for key in sorted({(case["source"], case["student"]) for case in cases}):
            idx = [i for i, case in enumerate(cases) if (case["source"], case["student"]) == key]
            lines.append(
                f"| {key[0]} / {key[1]} | {len(idx)} | {sum(gradus_ok[i] for i in idx)} "
                f"| {sum(alone_ok[i] for i in idx)} |"
            )
    for title, chosen in (
        ("math-verify alone right, gradus wrong", only_alone),
        ("gradus right, math-verify alone wrong", only_gradus),
        ("both wrong", both_wrong),
    ):
        lines += ["", f"{title} ({len(chosen)}):"]
        lines += [_case_line(cases[i], verdicts[i]) for i in chosen]
    return lines


def _case_line(case: dict, verdict) -> str:
    tail = case["completion"][-70:].replace("\n", "\\n")
    where = case.get("id", case["category"])
    return (
        f"- `{where}` gold `{case['gold']}`, expected {case['expected']}, gradus {verdict.label} "
        f"({verdict.rule}): …{tail!r} — {verdict.reason[:140]}"
    )


if __name__ == "__main__":
    main()
