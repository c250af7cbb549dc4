"""Agreement with expected verdicts: Gradus's verifier vs math-verify alone, on (gold, completion, expected) cases.

    python bench/verifier_agreement.py [--cases tests/fixtures/verifier/hand_written_regressions.jsonl]
        [--timeout 5] [--workers 2]

The default cases are hand-written regression cases (realistic completion shapes for the categories issue 25
named: display math after a word, ASCII relations, decimal commas, decimal approximations of fractions,
matrices after an equation, numbers mentioned mid-solution, plus ordinary right and wrong answers). They are
not an independent suite: the same person wrote them and the verifier rules.

Agreement is on the binary reward (correct vs anything else), which is what grading uses. Two sides:
- `gradus`: `scoring.grading.verify.Verifier.check` (its sandboxed worker processes);
- `math-verify alone`: `math_verify.parse(completion)` with its default extraction configs, then
  `math_verify.verify(parse("\\boxed{gold}"), answer)`, in a separate spawned process with math-verify's own
  time limits (the cases are hand-written, but model-shaped text is still never parsed in this process).
The column `decided by math_verify_full` counts Gradus verdicts taken from its full-text math-verify
candidate (`scoring.grading.full_text`). The table ends with the cases math-verify alone gets right and Gradus
gets wrong: the verifier is meant to keep that list short, and each entry is explained by its reason.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.grading.verify import VERIFIER_VERSION, CheckItem, Verifier, VerifyConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CASES = REPO / "tests" / "fixtures" / "verifier" / "hand_written_regressions.jsonl"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cases = load_cases(args.cases)
    expected = [case["expected"] == "correct" for case in cases]

    with Verifier(VerifyConfig(timeout_s=args.timeout, workers=args.workers)) as verifier:
        verdicts = verifier.check([CheckItem(case["gold"], case["completion"]) for case in cases])
    gradus = [v.is_correct for v in verdicts]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        alone = pool.map(math_verify_alone, [(c["gold"], c["completion"], args.timeout) for c in cases])

    gradus_ok = [g == e for g, e in zip(gradus, expected, strict=True)]
    alone_ok = [a == e for a, e in zip(alone, expected, strict=True)]
    only_alone = [i for i in range(len(cases)) if alone_ok[i] and not gradus_ok[i]]
    only_gradus = [i for i in range(len(cases)) if gradus_ok[i] and not alone_ok[i]]

    print(f"cases: {args.cases.relative_to(REPO) if args.cases.is_relative_to(REPO) else args.cases} ({len(cases)})")
    print(f"verifier: {VERIFIER_VERSION}\n")
    print(
        "| category | cases | gradus agrees | math-verify alone agrees | math-verify right, gradus wrong "
        "| decided by `math_verify_full` |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    by_full = [v.rule == "math_verify_full" for v in verdicts]
    by_category = Counter(case["category"] for case in cases)
    for category in by_category:
        idx = [i for i, case in enumerate(cases) if case["category"] == category]
        print(
            f"| {category} | {len(idx)} | {sum(gradus_ok[i] for i in idx)} | {sum(alone_ok[i] for i in idx)} "
            f"| {sum(i in only_alone for i in idx)} | {sum(by_full[i] for i in idx)} |"
        )
    n = len(cases)
    print(
        f"| **all** | {n} | {sum(gradus_ok)} ({sum(gradus_ok) / n:.0%}) | {sum(alone_ok)} ({sum(alone_ok) / n:.0%}) "
        f"| {len(only_alone)} | {sum(by_full)} |"
    )
    print(f"\nmath-verify alone right, gradus wrong ({len(only_alone)}):")
    for i in only_alone:
        _print_case(cases[i], verdicts[i].label, verdicts[i].reason)
    print(f"\ngradus right, math-verify alone wrong ({len(only_gradus)}):")
    for i in only_gradus:
        _print_case(cases[i], verdicts[i].label, verdicts[i].reason)


def _print_case(case: dict[str, str], label: str, reason: str) -> None:
    tail = case["completion"][-70:].replace("\n", "\\n")
    print(f"- [{case['category']}] gold {case['gold']!r}, expected {case['expected']}, gradus {label}: …{tail!r}")
    print(f"    reason: {reason[:160]}")


if __name__ == "__main__":
    main()
