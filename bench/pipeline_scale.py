"""Gradus's own overhead at pool scale: seconds and peak memory per stage at 10k, 100k and 1M problems, K = 8.

    python bench/pipeline_scale.py [--sizes 10000 100000] [--k 8] [--plan-only 1000000] [--workdir /tmp/gradus-scale]
                                   [--out bench/results/pipeline_scale.md]

Every stage runs the real stage function (`scoring/stages/*`) on a real data root (Delta tables, the completion
cache, the DuckDB catalog), each in its own child process so its peak resident memory (ru_maxrss) is its own:
problems → dedup → decontamination → rollouts + verification → difficulty → band filter → curriculum → exports,
then "one more adaptive round": 2 more samples for 1,000 problems added to the stored rollouts, graded again.

**The model is a test double** (`RecordedAnswerBackend`): it answers instantly, so the table measures Gradus's
overhead (prompting, the completion cache, verification, storage, grading, planning), not a model. Its texts are
real recorded completions of the embedded 0.5B student (`tests/fixtures/embedded_completions.jsonl`) with the
final answer replaced: correct (the gold) with a per-problem pass rate drawn from the problem's hash (a third of
the pool never solved, a sixth always, the rest spread between), wrong otherwise. Completions go through the
persistent completion cache and the real verifier (2 worker processes), as in a real run.

The pool is synthetic text (`bench/dedup_scale.py`'s generator: ~40 made-up words and 3–5 numbers per problem,
5% planted near-duplicates) imported from a JSONL file by field mapping, with 20 GSM8K test items planted
verbatim so decontamination has work; the gold answer of each problem is the sum of its numbers (which the test
double recomputes from the prompt). Decontamination runs the n-gram and TF-IDF detectors against GSM8K test and
MATH-500; the embedding detector is off (all-MiniLM on a million problems on 2 cores is hours of a model, not
Gradus overhead). `--plan-only N` runs a pool of N through problems → dedup → decontamination, writes a
difficulty table of N synthetic grades (labelled `bench_synthetic` in `method`), then curriculum planning and
exports: the million-problem path without 8M rollouts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from engines.base import Completion, ModelIdentity, SampleCall  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
RECORDED = REPO / "tests" / "fixtures" / "embedded_completions.jsonl"
FULL_STAGES = ("problems", "dedup", "decontamination", "rollouts", "difficulty", "band_filter", "curriculum", "exports")
PLAN_STAGES = ("problems", "dedup", "decontamination", "synthetic_grades", "curriculum", "exports")
ROUND_PROBLEMS = 1000
PLANTED_BENCHMARK = 20
_INTEGER = re.compile(r"-?\d+")


class RecordedAnswerBackend(ModelIdentity):
    """TEST DOUBLE for a model: answers at once with a recorded real completion whose final answer is replaced.

    The gold is the sum of the integers in the question (how the bench's pool is built); whether a sample is
    correct is decided by hashing (question, sample seed) against the problem's own pass rate, so the same call
    always gets the same answer and the cache and reruns behave as with a seeded model."""

    name = "bench-double"

    def __init__(self) -> None:
        super().__init__("recorded-answer-double", "double-v1")
        bodies = [json.loads(line)["completion"] for line in RECORDED.read_text().splitlines() if line.strip()]
        # drop the recorded final answer: everything from the last \boxed or "answer is" on
        self.bodies = [re.split(r"\\boxed|[Aa]nswer is", b)[0].rstrip() for b in bodies]

    def complete(self, calls: Sequence[SampleCall]) -> Iterator[tuple[int, Completion]]:
        for position, call in enumerate(calls):
            question = call.messages[-1].content
            gold = sum(int(n) for n in _INTEGER.findall(question))
            pass_rate = _pass_rate(question)
            draw = _unit(f"{question}|{call.sample_seed}")
            answer = gold if draw < pass_rate else gold + 1 + int(draw * 1000) % 9
            body = self.bodies[int(draw * 7919) % len(self.bodies)]
            text = f"{body}\n\nThe final answer is \\boxed{{{answer}}}."
            yield position, Completion(text, "stop", prompt_tokens=60, completion_tokens=len(text) // 4)

    def close(self) -> None:
        pass


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64


def _pass_rate(question: str) -> float:
    u = _unit(question)
    if u < 1 / 3:
        return 0.0
    if u > 5 / 6:
        return 1.0
    return (u - 1 / 3) * 2


# --- the pool and the config ------------------------------------------------------------------------------------


def write_pool(size: int, directory: Path) -> Path:
    """The pool file: synthetic problems (gold = sum of their integers) plus GSM8K test items planted verbatim."""
    from dedup_scale import synthetic_problems

    path = directory / "pool.jsonl"
    if path.exists():
        return path
    problems, _ = synthetic_problems(size - PLANTED_BENCHMARK)
    benchmark = [
        json.loads(line) for line in (SHARED / "gsm8k" / "test.jsonl").read_text().splitlines()[:PLANTED_BENCHMARK]
    ]
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as out:
        for p in problems:
            gold = sum(int(n) for n in _INTEGER.findall(p["question"]))
            out.write(json.dumps({"question": p["question"], "answer": str(gold)}) + "\n")
        for item in benchmark:
            gold = sum(int(n) for n in _INTEGER.findall(item["question"]))
            out.write(json.dumps({"question": item["question"], "answer": str(gold)}) + "\n")
    tmp.replace(path)
    return path


def write_config(directory: Path, k: int) -> Path:
    path = directory / "gradus.yaml"
    path.write_text(
        f"""data_root: {directory / "root"}
student:
  id: scale-double
  engine: {{backend: openai, base_url: "http://127.0.0.1:9", model: recorded-answer-double, model_revision: double-v1}}
sources:
  imports:
    - path: {directory / "pool.jsonl"}
      source: synthetic
      mapping: {{question: question, answer: answer, answer_rule: column}}
rollouts: {{k: {k}, temperature: 0.8, top_p: 0.95, max_tokens: 256, seed: 0}}
grading: {{mode: fixed}}
dedup: {{threshold: 0.8, semantic: none, skip_sources: []}}
decontamination:
  benchmarks:
    - {{name: gsm8k_test, path: {SHARED / "gsm8k" / "test.jsonl"}, preset: gsm8k}}
    - {{name: math500, path: {SHARED / "math" / "math500_test.jsonl"}, preset: math}}
  detectors: {{embedding_model: null}}
curriculum: {{shard_size: 4096}}
trainer: {{enabled: false}}
"""
    )
    return path


# --- one stage in a child process -------------------------------------------------------------------------------


def run_stage(stage: str, config_path: Path) -> dict:
    """Run one stage on the bench's data root; returns its seconds, peak RSS and counts."""
    from engines.cache import CompletionCache
    from engines.engine import Engine
    from scoring.config import load_config, resolve_data_root, with_overrides
    from scoring.stages import curation, curriculum, difficulty, problems, rollouts, training

    config = load_config(config_path)
    root = resolve_data_root(config)
    start, cpu = time.perf_counter(), time.process_time()
    counts: dict[str, object] = {}
    if stage == "problems":
        counts = problems.build_problems(config, root).counts
    elif stage == "dedup":
        counts = curation.build_dedup(config, root).counts
    elif stage == "decontamination":
        counts = curation.build_decontamination(config, root).counts
    elif stage == "rollouts":
        with Engine(RecordedAnswerBackend(), CompletionCache(root.cache_path)) as engine:
            counts = rollouts.build_rollouts(config, root, engine, progress=False).counts
    elif stage == "round":
        counts = _one_more_round(config, root)
    elif stage == "difficulty":
        counts = difficulty.build_difficulty(config, root).counts
    elif stage == "band_filter":
        counts = difficulty.build_band_filter(config, root).counts
    elif stage == "synthetic_grades":
        counts = _write_synthetic_grades(config, root)
    elif stage == "curriculum":
        counts = curriculum.build_curriculum(config, root).counts
    elif stage == "exports":
        config = with_overrides(config, {"exports": {"formats": ["trl"]}})
        counts = training.build_exports(config, root).counts
    else:
        raise SystemExit(f"unknown stage {stage!r}")
    return {
        "stage": stage,
        "seconds": time.perf_counter() - start,
        # this process and its reaped children (the verifier's workers): CPU time, which other load does not inflate
        "cpu_s": time.process_time() - cpu + _children_cpu(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "counts": {k: v for k, v in counts.items() if isinstance(v, int | float)},
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _one_more_round(config, root) -> dict[str, int]:  # noqa: ANN001 - bench-only glue
    """What one adaptive round costs on a table of this size: 2 more samples for ROUND_PROBLEMS problems, drawn,
    verified and added to the stored rollouts (as `grade_adaptively` stores a round), then `difficulty` re-graded."""
    from engines.cache import CompletionCache
    from engines.engine import Engine
    from scoring.grading.rollouts import run_rollouts
    from scoring.grading.verify import Verifier
    from scoring.stages.difficulty import build_difficulty
    from scoring.stages.problems import load_pool
    from scoring.stages.rollouts import store_rollouts

    problems = load_pool(root)[:ROUND_PROBLEMS]
    ranges = [(config.rollouts.k, 2)] * len(problems)
    with (
        Engine(RecordedAnswerBackend(), CompletionCache(root.cache_path)) as engine,
        Verifier(config.verify) as verifier,
    ):
        result = run_rollouts(
            problems,
            engine,
            student_id=config.student.id,
            config=config.rollouts,
            verifier=verifier,
            progress=False,
            sample_ranges=ranges,
        )
    store_rollouts(config, root, result.rollouts, result.audit)
    return {"round_rollouts": result.rollouts.num_rows} | build_difficulty(config, root).counts


def _write_synthetic_grades(config, root) -> dict[str, int]:  # noqa: ANN001 - bench-only glue
    """The difficulty partition a K-sample grading would give, without drawing 8 rollouts per problem: a tally
    per pool problem (k of n from the double's pass rate) graded by the real `grade_tallies`."""
    import numpy as np
    import pyarrow as pa

    from engines.config import expected_revision
    from scoring.grading.difficulty import grade_tallies
    from scoring.grading.rollouts import sampling_hash
    from scoring.grading.verify import VERIFIER_VERSION
    from scoring.stages.report import student_partition

    pool = root.read_table("problems", columns=["problem_id", "question"])
    rates = np.array([_pass_rate(q) for q in pool.column("question").to_pylist()])
    n = config.rollouts.k
    rows = pool.num_rows
    tallies = pa.table(
        {
            "problem_id": pool.column("problem_id"),
            "student_id": pa.repeat(config.student.id, rows),
            "student_revision": pa.repeat(expected_revision(config.student.engine, root.models_dir), rows),
            "sampling_hash": pa.repeat(sampling_hash(config.rollouts), rows),
            "verifier_version": pa.repeat(VERIFIER_VERSION, rows),
            "n": pa.array(np.full(rows, n, dtype=np.int32)),
            "k": pa.array(np.round(rates * n).astype(np.int32)),
            "n_timeout": pa.array(np.zeros(rows, dtype=np.int32)),
            "n_error": pa.array(np.zeros(rows, dtype=np.int32)),
            "tokens": pa.array(np.full(rows, 120 * n, dtype=np.int64)),
            "prompt_tokens": pa.array(np.full(rows, 60 * n, dtype=np.int64)),
            "seconds": pa.array(np.zeros(rows)),
        }
    )
    graded = grade_tallies(tallies, bands=config.grading.bands)
    root.write_table("difficulty", graded, student_partition(config))
    return {"graded": graded.num_rows}


# --- the parent -------------------------------------------------------------------------------------------------


def _child(stage: str, config_path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", stage, "--config", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(size: int, k: int, stages: Sequence[str], workdir: Path) -> list[dict]:
    directory = workdir / f"n{size}-k{k}"
    directory.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    write_pool(size, directory)
    config_path = write_config(directory, k)
    results = [{"stage": "write pool file", "seconds": time.perf_counter() - start, "peak_rss_mib": 0, "counts": {}}]
    for stage in stages:
        result = _child(stage, config_path)
        results.append(result)
        seconds, rss = result["seconds"], result["peak_rss_mib"]
        print(f"  {size:>9,} {stage:<18} {seconds:8.1f} s  {rss:7.0f} MiB  {result['counts']}", flush=True)
    return results


def report_markdown(report: dict[tuple[int, str], list[dict]], k: int, load: str) -> str:
    """One table: each stage's seconds and peak RSS per pool size, side by side, then the rollout rate."""
    runs = sorted(report)
    head = " | ".join(f"{size:,} ({kind}): wall s (CPU s) / peak MiB" for size, kind in runs)
    lines = [f"| stage | {head} |", "|---" * (len(runs) + 1) + "|"]
    stages = [
        s
        for s in (*FULL_STAGES, "synthetic_grades", "round")
        if any(s == r["stage"] for v in report.values() for r in v)
    ]
    for stage in stages:
        cells = []
        for run in runs:
            found = [r for r in report[run] if r["stage"] == stage]
            cells.append(
                f"{found[0]['seconds']:.1f} s ({found[0].get('cpu_s', 0):.1f} cpu) / {found[0]['peak_rss_mib']:,.0f}"
                if found
                else "–"
            )
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("")
    for size, kind in runs:
        by_stage = {r["stage"]: r for r in report[(size, kind)]}
        if "rollouts" in by_stage:
            r = by_stage["rollouts"]
            absorbed = r["counts"].get("rollouts_this_run", 0)
            lines.append(
                f"- {size:,} problems x K = {k}: {absorbed:,} rollouts absorbed in {r['seconds']:.1f} s = "
                f"**{absorbed / r['seconds']:,.0f} rollouts/s** ({absorbed / r['cpu_s']:,.0f} per CPU-second; "
                f"drawn from the test double, cached, verified, "
                f"stored), peak {r['peak_rss_mib']:,.0f} MiB; one more adaptive round ({ROUND_PROBLEMS:,} problems x "
                f"2 samples, stored and re-graded): {by_stage['round']['seconds']:.1f} s."
            )
        peak = max(r["peak_rss_mib"] for r in report[(size, kind)])
        lines.append(f"- {size:,} problems ({kind}): highest stage peak {peak:,.0f} MiB.")
    lines.append(f"\nMachine: {platform.node()}, {os.cpu_count()} cores; load average at the end: {load}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--plan-only", type=int, nargs="*", default=[])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/gradus-scale"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_stage(args.child, args.config)))
        return
    print(f"# pipeline_scale on {platform.node()} ({os.cpu_count()} cores), K = {args.k}")
    report = {}
    for size in args.sizes:
        report[(size, "full")] = run_size(size, args.k, (*FULL_STAGES, "round"), args.workdir)
    for size in args.plan_only:
        report[(size, "plan")] = run_size(size, args.k, PLAN_STAGES, args.workdir)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    table = report_markdown(report, args.k, load)
    print(table)
    if args.out:
        args.out.write_text(f"# bench/pipeline_scale.py\n\nCommand: `{' '.join(sys.argv)}`\n\n{table}")


if __name__ == "__main__":
    main()
