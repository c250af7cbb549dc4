"""Answers/s of Gradus's batch verifier: v3 against its path without the full-text candidate (the baseline),
check and audit, and against math-verify's parse+verify with the same number of processes.

    python bench/verify_throughput.py [--pairs 10000] [--k 8] [--correct 0.7] [--no-answer 0.1]
        [--timeout 5] [--workers 2] [--repeats 1] [--no-loop] [--out bench/results/verify_throughput.md]

Pairs are (gold, completion) built from real gold answers — GSM8K test (integers), MATH-500 (LaTeX: fractions,
radicals, intervals, tuples) and the arithmetic family — in groups of `--k` completions per gold, the order
rollouts reach the verifier (K samples of one problem in a row). Each completion is, independently, the gold
answer (`--correct`, default 0.7: most rollouts of a curriculum's problems are right), no answer at all or a
truncated derivation (`--no-answer`), or another gold answer (the rest, usually wrong), wrapped in completion
styles the embedded students produce (boxed, "the answer is", trailing number, display math).
`--k 1 --correct 0.6 --no-answer 0.1` is the mix of earlier runs (one completion per gold).

Sides, each timed the same way — processes started, modules imported and `--warm-up` pairs of another seed
checked by every side *before* the clock starts, so only checking is timed:
- `baseline check` / `baseline audit`: `Verifier(full_text=False)`, Gradus's own checkers only (verifier v3
  without the math_verify_full candidate: main's v2 decision path plus issue 25's answer forms);
- `v3 check` / `v3 audit`: `Verifier`, where math-verify on the full completion runs only where it can change
  the verdict (`scoring.grading.decision`);
- `loop`: `math_verify.parse` + `math_verify.verify` in a plain loop in one spawned process;
- `pool`: the same parse+verify calls in a `multiprocessing` pool of `--workers` spawned processes, in chunks
  of the Gradus verifier's `chunk_size`.
Every run gets fresh processes (Gradus's and math-verify's alike), so none profits from caches another run
filled.
All use a `--timeout` limit per answer. The first table is v3 against the baseline. The second is v3's check
against math-verify: Gradus decides many pairs without math-verify (normalized text equality, rule `exact`;
plain-number comparison, `numeric`), so it times every side again on the pairs *not* decided by `exact` and on
the pairs Gradus's own checkers send to math-verify (rule `math_verify`), which shows how much of the speed-up
the shortcuts account for. Besides wall time it reports CPU seconds (this process plus its workers, from
/proc), which other load on a shared machine does not inflate. With `--repeats R` every run is repeated R
times, interleaved, and the median is reported.
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
    "Let's break this down:\n\n1. We start from the given values.\n2. Combining them carefully, we get:\n"
    "\\[\n{a}\n\\]\n\nTherefore, the final answer is \\(\\boxed{{{a}}}\\).",
]
NO_ANSWER = [
    "I am not sure how to solve this problem.",
    "Let's break this down step by step:\n\n1. First, we compute \\(3 \\times 4 = 12\\).\n2. Then we subtract",
]
SIDES = ("baseline check", "v3 check", "baseline audit", "v3 audit")
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


def make_pairs(
    count: int, seed: int, k: int = 8, correct: float = 0.7, no_answer: float = 0.1
) -> list[tuple[str, str]]:
    """`count` (gold, completion) pairs in groups of `k` per gold; each completion is the gold answer with
    probability `correct`, no answer with probability `no_answer`, else another gold answer."""
    if min(correct, no_answer) < 0 or correct + no_answer > 1 or k < 1:
        raise SystemExit(f"need k >= 1 and correct + no-answer <= 1, got k={k} {correct=} {no_answer=}")
    rng = random.Random(seed)
    golds = gold_answers()
    pairs: list[tuple[str, str]] = []
    while len(pairs) < count:
        gold = rng.choice(golds)
        for _ in range(min(k, count - len(pairs))):
            roll = rng.random()
            if roll < no_answer:
                pairs.append((gold, rng.choice(NO_ANSWER)))
                continue
            answer = gold if roll < no_answer + correct else rng.choice(golds)  # another gold: usually wrong
            pairs.append((gold, rng.choice(STYLES).format(a=answer)))
    return pairs


# --- the math-verify baseline (module level, so spawned pool workers can import it) ----------------------------

_TIMEOUT = 5


def _mv_init(timeout: int) -> None:
    """Pool initializer: import math-verify and check one pair, as Gradus's workers do in their warm-up."""
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


def gradus_run(config: VerifyConfig, side: str, warm: list, pairs: list) -> tuple[float, float, list]:
    """(wall s, CPU s, verdict lists) of one Gradus side on `pairs`, timed on a verifier of its own that has
    checked only the `warm` pairs: no side profits from caches another run filled."""
    full_text, mode = side.startswith("v3"), side.split()[-1]
    with Verifier(config, full_text=full_text) as verifier:

        def run(batch: list[tuple[str, str]]) -> list[list]:
            items = [CheckItem(gold, completion) for gold, completion in batch]
            return verifier.audit(items) if mode == "audit" else [[v] for v in verifier.check(items)]

        run(warm)
        return timed(lambda: run(pairs))


def _mv_loop(pairs: list[tuple[str, str]]) -> list[bool]:
    return [_mv_check(pair) for pair in pairs]


def math_verify_run(args: argparse.Namespace, side: str, warm: list, pairs: list) -> tuple[float, float, list]:
    """(wall s, CPU s, correct flags) of math-verify on `pairs`, in fresh spawned processes that have checked only
    the `warm` pairs: `loop` is a plain loop in one process, `pool` a pool of `--workers` processes fed in
    chunks of the Gradus verifier's `chunk_size`."""
    processes = 1 if side == "loop" else args.workers
    context = multiprocessing.get_context("spawn")  # as Gradus's pools
    with context.Pool(processes, initializer=_mv_init, initargs=(args.timeout,)) as pool:

        def run(batch: list[tuple[str, str]]) -> list[bool]:
            if side == "loop":
                return pool.apply(_mv_loop, (batch,))
            return pool.map(_mv_check, batch, chunksize=VerifyConfig().chunk_size)

        run(warm)
        return timed(lambda: run(pairs))


Times = dict[tuple[str, str], list[tuple[float, float]]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=8, help="completions per gold answer, in a row")
    parser.add_argument("--correct", type=float, default=0.7, help="share of completions giving the gold answer")
    parser.add_argument("--no-answer", type=float, default=0.1, help="share with no answer or a cut-off derivation")
    parser.add_argument("--timeout", type=int, default=5, help="seconds per answer, all runs")
    parser.add_argument("--workers", type=int, default=2, help="processes for the pool and for each Gradus verifier")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, interleaved; the median is shown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=500, help="pairs (another seed) every side checks untimed")
    parser.add_argument("--no-loop", action="store_true", help="skip the single-process math-verify loop")
    parser.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    args = parser.parse_args()
    mix = {"k": args.k, "correct": args.correct, "no_answer": args.no_answer}
    pairs = make_pairs(args.pairs, args.seed, **mix)
    warm = make_pairs(args.warm_up, args.seed + 1, **mix)  # other pairs, same mix
    config = VerifyConfig(timeout_s=args.timeout, workers=args.workers)
    load = os.getloadavg()[0]

    # Only checking is timed: imports, process start-up and the warm-up pairs run first, on every side.
    theirs = ([] if args.no_loop else ["loop"]) + ["pool"]

    def run_side(side: str, batch: list[tuple[str, str]]) -> tuple[float, float, list]:
        if side in SIDES:
            return gradus_run(config, side, warm, batch)
        return math_verify_run(args, side, warm, batch)

    times: Times = {}
    results: dict[str, list] = {}
    subsets: dict[str, list[tuple[str, str]]] = {"all": pairs}
    for repeat in range(args.repeats):
        for side in [*SIDES, *theirs]:
            wall, cpu, results[side] = run_side(side, pairs)
            times.setdefault(("all", side), []).append((wall, cpu))
        if repeat == 0:
            decided = list(zip(pairs, results["baseline check"], strict=True))
            subsets[NOT_EXACT] = [pair for pair, [verdict] in decided if verdict.rule != "exact"]
            subsets[BY_MATH_VERIFY] = [pair for pair, [verdict] in decided if verdict.rule == "math_verify"]
        for name in (NOT_EXACT, BY_MATH_VERIFY):
            if not subsets[name]:
                continue
            for side in ("v3 check", *theirs):
                wall, cpu, _ = run_side(side, subsets[name])
                times.setdefault((name, side), []).append((wall, cpu))

    report = "\n".join(_report(args, pairs, times, results, subsets, load))
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = "python bench/verify_throughput.py " + " ".join(sys.argv[1:])
        args.out.write_text(f"# Verifier throughput\n\n```\n{command}\n```\n\n{report}\n", encoding="utf-8")


def _report(args: argparse.Namespace, pairs: list, times: Times, results: dict, subsets: dict, load: float) -> list:
    n = len(pairs)
    deciding = {side: [verdicts[0] for verdicts in results[side]] for side in SIDES}
    full_ran = sum(any(v.rule == "math_verify_full" for v in verdicts) for verdicts in results["v3 audit"])
    full_decided = sum(v.rule == "math_verify_full" for v in deciding["v3 check"])
    flipped = Counter(
        (old.label, new.label)
        for old, new in zip(deciding["baseline check"], deciding["v3 check"], strict=True)
        if old.label != new.label
    )
    same_in_audit = all(
        (a.label, a.rule) == (b.label, b.rule) for a, b in zip(deciding["v3 check"], deciding["v3 audit"], strict=True)
    )
    rules = Counter(v.rule for v in deciding["v3 check"])
    labels = Counter(v.label for v in deciding["v3 check"])
    mv_correct = results["pool"]
    agree = sum(a == b.is_correct for a, b in zip(mv_correct, deciding["v3 check"], strict=True)) / n
    all_sides = [*SIDES, *(["loop"] if not args.no_loop else []), "pool"]
    return [
        f"pairs: {n} (seed {args.seed}) in groups of {args.k} per gold answer; each completion gives the gold answer "
        f"with p={args.correct}, no answer with p={args.no_answer}, else another gold answer   "
        f"timeout: {args.timeout}s per answer (all runs)   processes: {args.workers} per verifier and for the "
        f"math-verify pool   repeats: {args.repeats} (median)",
        f"machine: {os.cpu_count()} CPUs, load average {load:.2f} at start and {os.getloadavg()[0]:.2f} at the end; "
        f"python {platform.python_version()}",
        f"timed: checking only (imports, process start-up and {args.warm_up} warm-up pairs of another seed run "
        "first, on every side); CPU s = this process plus its worker processes",
        "",
        "Verifier v3 against its path without the full-text candidate (baseline), on all pairs:",
        "",
        _versus_baseline(times, n),
        "",
        f"math_verify_full ran on {full_ran} pairs ({full_ran / n:.1%}: those Gradus's own checkers did not grade "
        f"correct) and decided {full_decided}; verdicts changed from the baseline: "
        + (", ".join(f"{a} -> {b}: {c}" for (a, b), c in sorted(flipped.items())) or "none")
        + f"; deciding verdicts of v3 check and v3 audit identical: {same_in_audit}",
        "",
        "v3 check against math-verify's parse+verify:",
        "",
        _versus_math_verify(times, subsets, args),
        "",
        "pairs decided by each v3 rule (all pairs): "
        + ", ".join(f"`{rule}` {c} ({c / n:.1%})" for rule, c in rules.most_common()),
        f"v3 verdicts: {dict(sorted(labels.items()))}",
        f"agreement of v3 with math-verify on correct/not-correct: {agree:.1%}",
        "CPUs in use while checking all pairs (CPU s / wall s): "
        + ", ".join(f"{side} {_usage(times[('all', side)]):.2f}" for side in all_sides)
        + f" of {os.cpu_count()}; well below the process count means other load held the run back, and CPU s is "
        "the figure to compare",
    ]


def _median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def _usage(runs: list[tuple[float, float]]) -> float:
    return statistics.median(cpu / wall for wall, cpu in runs)


def _versus_baseline(times: Times, n: int) -> str:
    """One row per mode: baseline and v3 wall s (answers/s) / CPU s, and v3's answers/s as a share of baseline."""
    rows = [
        "| mode | baseline: wall s (answers/s) / CPU s | v3: wall s (answers/s) / CPU s "
        "| v3 answers/s vs baseline: wall / CPU |",
        "|---|---:|---:|---:|",
    ]
    for mode in ("check", "audit"):
        base_wall, base_cpu = _median(times[("all", f"baseline {mode}")])
        new_wall, new_cpu = _median(times[("all", f"v3 {mode}")])
        rows.append(
            f"| {mode} | {base_wall:.1f} ({n / base_wall:,.0f}) / {base_cpu:.1f} "
            f"| {new_wall:.1f} ({n / new_wall:,.0f}) / {new_cpu:.1f} "
            f"| {base_wall / new_wall:.0%} / {base_cpu / new_cpu:.0%} |"
        )
    return "\n".join(rows)


def _versus_math_verify(times: Times, subsets: dict, args: argparse.Namespace) -> str:
    """One row per pair set; per side wall seconds, answers/s and CPU seconds (medians over the repeats)."""
    sides = [] if args.no_loop else [("loop", "math-verify loop, 1 process")]
    sides += [("pool", f"math-verify pool, {args.workers} processes"), ("v3 check", f"v3, {args.workers} workers")]
    ratios = [("pool", "v3 vs pool")] + ([] if args.no_loop else [("loop", "v3 vs loop")])
    header = "| pairs | n | " + " | ".join(f"{label}: wall s (answers/s) / CPU s" for _, label in sides)
    header += " | " + " | ".join(f"{label}: wall / CPU" for _, label in ratios) + " |"
    rows = [header, "|---|---:|" + "---:|" * (len(sides) + len(ratios))]
    for name, subset in subsets.items():
        if not subset:
            rows.append(f"| {name} | 0 |" + " — |" * (len(sides) + len(ratios)))
            continue
        medians = {side: _median(times[(name, side)]) for side, _ in sides}
        cells = [f"{wall:.1f} ({len(subset) / wall:,.0f}) / {cpu:.1f}" for wall, cpu in medians.values()]
        ours = medians["v3 check"]
        cells += [f"{medians[side][0] / ours[0]:.2f}× / {medians[side][1] / ours[1]:.2f}×" for side, _ in ratios]
        rows.append(f"| {name} | {len(subset):,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
