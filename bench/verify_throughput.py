"""Answers/s of Gradus's batch verifier vs math-verify's parse+verify, with the same number of processes.

    python bench/verify_throughput.py [--pairs 10000] [--timeout 5] [--workers 2] [--repeats 1] [--no-loop]
        [--out bench/results/verify_throughput.md]

Pairs are (gold, completion) built from real gold answers — GSM8K test (integers), MATH-500 (LaTeX: fractions,
radicals, intervals, tuples) and the arithmetic family — wrapped in completion styles the embedded students
produce (boxed, "the answer is", trailing number), a third of them with a wrong answer and some with none.

Three sides check the same pairs, each timed the same way — processes started, modules imported and
`--warm-up` pairs of another seed checked by every side *before* the clock starts, so only checking is timed:
- `loop`: `math_verify.parse` + `math_verify.verify` in a plain loop in this process (1 process);
- `pool`: the same parse+verify calls in a `multiprocessing` pool of `--workers` spawned processes, in chunks
  of the Gradus verifier's `chunk_size` (math-verify's own signal timers work there: each task runs in the
  worker's main thread);
- `gradus`: `scoring.grading.verify.Verifier.check` with `--workers` worker processes.
All three use a `--timeout` limit per answer. Gradus decides some pairs without math-verify: normalized text
equality (rule `exact`) and plain-number comparison (rule `numeric`). The bench prints how many pairs each
rule decided and times the three sides again on the pairs *not* decided by the `exact` shortcut, and on the
pairs Gradus sends to math-verify (no shortcut at all), so the table shows how much of the speed-up the
shortcuts account for. Besides wall time it reports CPU seconds (this
process plus its workers, from /proc), which other load on a shared machine does not inflate. With
`--repeats R` every run is repeated R times, interleaved, and the median is reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.grading.verify import CheckItem, Verifier, VerifyConfig  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STYLES = [
    "Let me work through it step by step.\n\nSo the result is \\boxed{{{a}}}.",
    "First we simplify. Then we compute carefully.\nThe answer is {a}.",
    "We get {a}",
    "Step 1: set up.\nStep 2: solve.\n\\[\n\\boxed{{{a}}}\n\\]",
]
NOT_EXACT = "not decided by `exact`"
BY_MATH_VERIFY = "decided by `math_verify` (no shortcut)"
WARM_UP = ("\\sqrt{2}", "So the answer is \\boxed{2^{1/2}}.")


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


# --- the math-verify baseline (module level, so spawned pool workers can import it) ----------------------------

_TIMEOUT = 5


def _mv_init(timeout: int) -> None:
    """Pool initializer: import math-verify and check one pair, as Gradus's workers do in `_warm_up`."""
    global _TIMEOUT
    _TIMEOUT = timeout
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    _mv_check(WARM_UP)


def _mv_check(pair: tuple[str, str]) -> bool:
    from math_verify import parse, verify

    gold, completion = pair
    try:
        return bool(
            verify(
                parse(f"\\boxed{{{gold}}}", parsing_timeout=_TIMEOUT),
                parse(completion, parsing_timeout=_TIMEOUT),
                timeout_seconds=_TIMEOUT,
            )
        )
    except Exception:  # a failure is "not correct", as math-verify's own wrapper would report it
        return False


def cpu_seconds() -> float:
    """CPU time of this process and its live child processes (Linux /proc; NaN elsewhere).

    The machine may be shared, so wall time depends on what else runs; CPU time is what the checking costs.
    """
    total = time.process_time()
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
            if int(fields[1]) == me:  # ppid
                total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    except (OSError, ValueError):
        return float("nan")
    return total


def timed(run: Callable[[], list]) -> tuple[float, float, list]:
    """(wall seconds, CPU seconds, results) of one run."""
    cpu, started = cpu_seconds(), time.perf_counter()
    out = run()
    return time.perf_counter() - started, cpu_seconds() - cpu, out


def sides(args: argparse.Namespace, pool, verifier: Verifier, chunk_size: int) -> dict[str, Callable]:
    """Each side as a function of the pairs it checks, returning its correct/not-correct (or verdicts)."""
    out: dict[str, Callable] = {}
    if not args.no_loop:
        out["loop"] = lambda pairs: [_mv_check(pair) for pair in pairs]
    out["pool"] = lambda pairs: pool.map(_mv_check, pairs, chunksize=chunk_size)
    out["gradus"] = lambda pairs: verifier.check([CheckItem(gold, completion) for gold, completion in pairs])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--timeout", type=int, default=5, help="seconds per answer, all three runs")
    parser.add_argument("--workers", type=int, default=2, help="processes for both the pool and Gradus")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, interleaved; the median is shown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=500, help="pairs (another seed) every side checks untimed")
    parser.add_argument("--no-loop", action="store_true", help="skip the single-process math-verify loop")
    parser.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    args = parser.parse_args()
    pairs = make_pairs(args.pairs, args.seed)
    warm = make_pairs(args.warm_up, args.seed + 1)  # other pairs, same mix
    config = VerifyConfig(timeout_s=args.timeout, workers=args.workers)
    load = os.getloadavg()[0]

    # Only checking is timed: imports, process start-up and the warm-up pairs run first, on every side.
    _mv_init(args.timeout)  # the loop's import, in this process
    context = multiprocessing.get_context("spawn")  # Gradus's pool spawns its workers too
    with context.Pool(args.workers, initializer=_mv_init, initargs=(args.timeout,)) as pool, Verifier(config) as ours:
        runs = sides(args, pool, ours, config.chunk_size)
        for run in runs.values():
            run(warm)
        times: dict[tuple[str, str], list[tuple[float, float]]] = {}
        results: dict[str, list] = {}
        subsets: dict[str, list[tuple[str, str]]] = {"all": pairs}
        for repeat in range(args.repeats):
            for side, run in runs.items():
                wall, cpu, results[side] = timed(lambda run=run: run(pairs))
                times.setdefault(("all", side), []).append((wall, cpu))
            if repeat == 0:
                decided = list(zip(pairs, results["gradus"], strict=True))
                subsets[NOT_EXACT] = [pair for pair, verdict in decided if verdict.rule != "exact"]
                subsets[BY_MATH_VERIFY] = [pair for pair, verdict in decided if verdict.rule == "math_verify"]
            for name in (NOT_EXACT, BY_MATH_VERIFY):
                for side, run in runs.items():
                    wall, cpu, _ = timed(lambda run=run, name=name: run(subsets[name]))
                    times.setdefault((name, side), []).append((wall, cpu))

    verdicts = results["gradus"]
    rules = Counter(v.rule for v in verdicts)
    labels = Counter(v.label for v in verdicts)
    ours_correct = [v.label == "correct" for v in verdicts]
    agree = sum(a == b for a, b in zip(results["pool"], ours_correct, strict=True)) / len(pairs)
    lines = [
        f"pairs: {len(pairs)} (seed {args.seed})   timeout: {args.timeout}s per answer (all runs)   "
        f"processes: {args.workers} for both the math-verify pool and Gradus   repeats: {args.repeats} (median)",
        f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start and {os.getloadavg()[0]:.2f} at the end; "
        f"python {platform.python_version()}",
        f"timed: checking only (imports, process start-up and {args.warm_up} warm-up pairs of another seed run "
        "first, on every side); CPU s = this process plus its worker processes",
        "",
        _table(times, subsets, args),
        "",
        "pairs decided by each Gradus rule (all pairs): "
        + ", ".join(f"`{rule}` {n} ({n / len(pairs):.1%})" for rule, n in rules.most_common()),
        f"Gradus verdicts: {dict(sorted(labels.items()))}",
        f"agreement with math-verify on correct/not-correct: {agree:.1%}",
        "CPUs in use while checking all pairs (CPU s / wall s): "
        + ", ".join(f"{side} {_usage(times[('all', side)]):.2f}" for side in runs)
        + f" of {os.cpu_count()}; well below the process count means other load held the run back, and CPU s is "
        "the figure to compare",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python bench/verify_throughput.py " + " ".join(sys.argv[1:])
        args.out.write_text(f"# Verifier throughput\n\n```\n{command}\n```\n\n{report}\n", encoding="utf-8")


def _usage(runs: list[tuple[float, float]]) -> float:
    return statistics.median(cpu / wall for wall, cpu in runs)


def _table(times: dict[tuple[str, str], list[tuple[float, float]]], subsets: dict, args: argparse.Namespace) -> str:
    """One row per pair set; per side wall seconds, answers/s and CPU seconds (medians over the repeats)."""
    sides = [] if args.no_loop else [("loop", "math-verify loop, 1 process")]
    sides += [("pool", f"math-verify pool, {args.workers} processes"), ("gradus", f"Gradus, {args.workers} workers")]
    ratios = [("pool", "Gradus vs pool")] + ([] if args.no_loop else [("loop", "Gradus vs loop")])
    header = "| pairs | n | " + " | ".join(f"{label}: wall s (answers/s) / CPU s" for _, label in sides)
    header += " | " + " | ".join(f"{label}: wall / CPU" for _, label in ratios) + " |"
    rows = [header, "|---|---:|" + "---:|" * (len(sides) + len(ratios))]
    for name, subset in subsets.items():
        wall = {side: statistics.median(w for w, _ in times[(name, side)]) for side, _ in sides}
        cpu = {side: statistics.median(c for _, c in times[(name, side)]) for side, _ in sides}
        cells = [f"{wall[side]:.1f} ({len(subset) / wall[side]:,.0f}) / {cpu[side]:.1f}" for side, _ in sides]
        cells += [f"{wall[side] / wall['gradus']:.2f}× / {cpu[side] / cpu['gradus']:.2f}×" for side, _ in ratios]
        rows.append(f"| {name} | {len(subset):,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
