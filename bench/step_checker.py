"""The step checker `arith_steps_v1` on real model completions: how often it finds a checkable arithmetic claim,
how many claims it judges false, and every false claim with its completion, for a person to audit.

    python bench/step_checker.py [--completions tests/fixtures/embedded_completions.jsonl]

The input is the repository's recorded completions (Qwen2.5-Coder 0.5B and 1.5B answering the pipeline's solve
prompt: procedural families, GSM8K, MATH-500), so the numbers say what the checker does on the traces small
models write, not on traces written to please it. Nothing was tuned on this file after the checker was written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from scoring.supervision.steps import check_arithmetic_steps, split_steps, step_claims  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--completions", type=Path, default=HERE.parent / "tests/fixtures/embedded_completions.jsonl")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.completions.read_text().splitlines() if line.strip()]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    flagged = []
    for row in rows:
        check = check_arithmetic_steps(row["completion"])
        key = f"{row['source']}/{row['expected']}"
        t = totals[key]
        t[0] += 1
        t[1] += check.n_steps
        t[2] += check.n_checked_steps
        t[3] += check.n_claims
        t[4] += check.n_wrong_claims
        t[5] += check.n_error_steps > 0
        for step in split_steps(row["completion"])[0]:
            flagged += [(row["question"][:50], c.text, str(c.left)) for c in step_claims(step) if not c.holds]
    print("| source/verdict | completions | steps | checked steps | claims | false claims | traces with an error |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key in sorted(totals):
        print("| " + key + " | " + " | ".join(str(v) for v in totals[key]) + " |")
    print(f"\nfalse claims ({len(flagged)}): question | claim | exact left-hand value")
    for question, claim, value in flagged:
        print(f"- {question!r} | `{claim}` | {value}")


if __name__ == "__main__":
    main()
