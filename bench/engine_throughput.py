"""Tokens/s and requests/s of a raw backend vs the same prompts through the Gradus engine + cache (cold, warm),
for the embedded llama.cpp backend and for the openai backend against llama-cpp-python's server on loopback
(the same GGUF), plus a row for Gradus on Ray with 2 workers (issue 11 item 5; hook in `ray_rows`).

    nice python bench/engine_throughput.py [--backend embedded|openai|both] [--model NAME_OR_GGUF]
        [--problems 6] [--samples 2] [--max-tokens 128] [--concurrency 32]

Prints a table: the cold engine's overhead over the raw backend is the pipeline's cost per call (cache
look-ups and writes, bookkeeping); the warm run shows what a repeated or resumed run costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import ChatRequest, Engine, Message, SamplingParams  # noqa: E402
from engines.base import Backend, SampleCall  # noqa: E402
from engines.cache import CompletionCache  # noqa: E402
from engines.config import EngineConfig, build_backend  # noqa: E402
from engines.models import resolve_model_file  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402

# path label, samples, completion tokens, seconds (None: not measured), model calls made
Row = tuple[str, int, int, float | None, int]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--backend", choices=("embedded", "openai", "both"), default="both")
    parser.add_argument("--concurrency", type=int, default=32, help="openai: requests in flight")
    parser.add_argument("--models-dir", default=os.environ.get("GRADUS_HOME", ".gradus") + "/models")
    args = parser.parse_args()

    family = FAMILIES.get("arithmetic")()
    problems = family.sample(seed=0, difficulties=[1, 2, 3], per_level=max(1, args.problems // 3))
    sampling = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=args.max_tokens, n=args.samples, seed=0)
    requests = [
        ChatRequest(
            (Message("system", "Think briefly, then answer as \\boxed{}."), Message("user", p.question)),
            sampling,
        )
        for p in problems
    ]
    path, _ = resolve_model_file(args.model, Path(args.models_dir))
    rows: list[Row] = []
    if args.backend in ("embedded", "both"):
        backend = build_backend(EngineConfig(model=str(path)), Path(args.models_dir))
        rows += engine_rows("llama.cpp (embedded)", backend, requests)
    if args.backend in ("openai", "both"):
        from tests.engines.servers import llama_cpp_server

        log = Path(args.models_dir) / "bench_engine_llama_server.log"
        with llama_cpp_server(path, "bench", log) as url:
            config = EngineConfig(backend="openai", model="bench", base_url=url, max_concurrency=args.concurrency)
            rows += engine_rows("openai (llama.cpp server)", build_backend(config, Path(args.models_dir)), requests)
    rows += ray_rows(args, requests)

    print(
        f"model: {args.model}   prompts: {len(requests)} x {args.samples} samples   max_tokens: {args.max_tokens}"
        f"   threads: {os.cpu_count()}   openai concurrency: {args.concurrency}"
    )
    print(f"| {'path':<52} | samples | model calls | tokens | seconds | tokens/s | requests/s | overhead vs raw |")
    print(f"|{'-' * 54}|---------|-------------|--------|---------|----------|------------|-----------------|")
    raw_s: dict[str, float] = {}
    for label, samples, tokens, seconds, calls_made in rows:
        family = label.split(":")[0]
        if seconds is None:
            print(
                f"| {label:<52} | {samples:>7} | {'-':>11} | {'-':>6} | {'-':>7} | {'-':>8} | {'-':>10} | {'-':>15} |"
            )
            continue
        if label.endswith("raw backend"):
            raw_s[family] = seconds
        rate = tokens / seconds if seconds else float("inf")
        req_rate = samples / seconds if seconds else float("inf")
        base = raw_s.get(family)
        overhead = "" if label.endswith("raw backend") or not base else f"{(seconds - base) / base * 100:+.1f}%"
        print(
            f"| {label:<52} | {samples:>7} | {calls_made:>11} | {tokens:>6} | {seconds:>7.2f} | {rate:>8.1f} | "
            f"{req_rate:>10.1f} | {overhead:>15} |"
        )


def engine_rows(name: str, backend: Backend, requests: list[ChatRequest]) -> list[Row]:
    """Raw `backend.complete` on every sample, then the same requests through `Engine` with a fresh cache (cold)
    and again (warm: zero model calls)."""
    calls = [SampleCall(r.messages, r.sampling, i) for r in requests for i in range(r.sampling.n)]
    started = time.perf_counter()
    raw_tokens = sum(c.completion_tokens for _, c in backend.complete(calls))
    rows: list[Row] = [(f"{name}: raw backend", len(calls), raw_tokens, time.perf_counter() - started, len(calls))]
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(backend, CompletionCache(Path(tmp) / "cache.sqlite"))
        for label in ("gradus engine, cold cache", "gradus engine, warm cache"):
            before = engine.stats.model_calls
            started = time.perf_counter()
            groups = engine.generate(requests, progress=False)
            seconds = time.perf_counter() - started
            tokens = sum(c.completion_tokens for g in groups for c in g)
            rows.append((f"{name}: {label}", len(calls), tokens, seconds, engine.stats.model_calls - before))
        engine.close()
    return rows


def ray_rows(args: argparse.Namespace, requests: list[ChatRequest]) -> list[Row]:
    """Hook for "Gradus on Ray, 2 workers" (issue 11 item 5): the Ray path lives in `scoring/distributed.py`
    (`run_rollouts_on_ray`), built separately; until it is wired here the row is printed unmeasured."""
    samples = sum(r.sampling.n for r in requests)
    return [("gradus on Ray, 2 workers: (not wired yet)", samples, 0, None, 0)]


if __name__ == "__main__":
    main()
