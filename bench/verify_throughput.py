"""Answers/s of Gradus's batch verifier vs `math_verify.verify` called in a plain loop, on the same pairs.

    python bench/verify_throughput.py [--pairs 10000] [--timeout 5] [--workers 2]

Pairs are (gold, completion) built from real gold answers — GSM8K test (integers), MATH-500 (LaTeX: fractions,
radicals, intervals, tuples) and the arithmetic family — wrapped in completion styles the embedded students
produce (boxed, "the answer is", trailing number), a third of them with a wrong answer and some with none.
Both sides run with time limits on (math-verify's own signal timers in the loop; per-answer timers in worker
processes for Gradus). Prints a table and how often the two agree.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.verify import CheckItem, Verifier, VerifyConfig  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
STYLES = [
    "Let me work through it step by step.\n\nSo the result is \\boxed{{{a}}}.",
    "First we simplify. Then we compute carefully.\nThe answer is {a}.",
    "We get {a}",
    "Step 1: set up.\nStep 2: solve.\n\\[\n\\boxed{{{a}}}\n\\]",
]


def gold_answers() -> list[str]:
    golds = []
    for line in (SHARED / "gsm8k" / "test.jsonl").read_text().splitlines()[:1500]:
        golds.append(json.loads(line)["answer"].split("####")[-1].strip().replace(",", ""))
    for line in (SHARED / "math" / "math500_test.jsonl").read_text().splitlines():
        golds.append(json.loads(line)["answer"])
    golds += [p.answer for p in FAMILIES.get("arithmetic")().sample(0, [1, 2, 3, 4, 5], 100)]
    return golds


def make_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    golds = gold_answers()
    pairs = []
    for _ in range(count):
        gold = rng.choice(golds)
        roll = rng.random()
        if roll < 0.6:
            answer = gold
        elif roll < 0.9:
            answer = rng.choice(golds)  # usually wrong
        else:
            pairs.append((gold, "I am not sure how to solve this problem."))
            continue
        pairs.append((gold, rng.choice(STYLES).format(a=answer)))
    return pairs


def loop_math_verify(pairs: list[tuple[str, str]], timeout: int) -> list[bool]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    out = []
    for gold, completion in pairs:
        out.append(
            bool(
                verify(
                    parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout),
                    parse(completion, parsing_timeout=timeout),
                    timeout_seconds=timeout,
                )
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--timeout", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = make_pairs(args.pairs, args.seed)

    started = time.perf_counter()
    baseline = loop_math_verify(pairs, args.timeout)
    loop_s = time.perf_counter() - started

    config = VerifyConfig(timeout_s=args.timeout, workers=args.workers)
    with Verifier(config) as verifier:
        verifier.check([CheckItem("1", "\\boxed{1}")] * args.workers)  # start the workers outside the timing
        started = time.perf_counter()
        verdicts = verifier.check([CheckItem(g, c) for g, c in pairs])
        ours_s = time.perf_counter() - started

    ours = [v.label == "correct" for v in verdicts]
    agree = sum(a == b for a, b in zip(baseline, ours, strict=True)) / len(pairs)
    labels = {label: sum(v.label == label for v in verdicts) for label in sorted({v.label for v in verdicts})}
    print(f"pairs: {len(pairs)}   timeout: {args.timeout}s per answer (both)   workers: {args.workers}")
    print("| verifier                                  | seconds | answers/s | speed-up |")
    print("|-------------------------------------------|---------|-----------|----------|")
    print(f"| math_verify.parse+verify, plain loop      | {loop_s:7.1f} | {len(pairs) / loop_s:9.0f} |    1.00x |")
    print(
        f"| gradus Verifier.check (batch, {args.workers} workers)   | {ours_s:7.1f} | {len(pairs) / ours_s:9.0f} | "
        f"{loop_s / ours_s:7.2f}x |"
    )
    print(f"agreement on correct/not-correct: {agree:.1%}   gradus verdicts: {labels}")


if __name__ == "__main__":
    main()
