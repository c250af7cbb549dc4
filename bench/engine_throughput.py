"""Tokens/s of the raw llama.cpp backend vs the same prompts through the Gradus engine + cache (cold, warm).

    python bench/engine_throughput.py [--model NAME_OR_GGUF] [--problems 6] [--max-tokens 128]

Prints a table: the cold engine's overhead over raw llama.cpp is the pipeline's cost per call (cache
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
from engines.cache import CompletionCache  # noqa: E402
from engines.config import EngineConfig, build_backend  # noqa: E402
from engines.models import resolve_model_file  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
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
    backend = build_backend(EngineConfig(model=str(path)), Path(args.models_dir))

    rows = []
    # Raw: the backend alone, no cache, no engine.
    from engines.base import SampleCall

    calls = [SampleCall(r.messages, r.sampling, i) for r in requests for i in range(r.sampling.n)]
    started = time.perf_counter()
    raw_tokens = sum(c.completion_tokens for _, c in backend.complete(calls))
    raw_s = time.perf_counter() - started
    rows.append(("raw llama.cpp backend", len(calls), raw_tokens, raw_s, len(calls)))

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(backend, CompletionCache(Path(tmp) / "cache.sqlite"))
        for label in ("gradus engine, cold cache", "gradus engine, warm cache"):
            before = engine.stats.model_calls
            started = time.perf_counter()
            groups = engine.generate(requests, progress=False)
            seconds = time.perf_counter() - started
            tokens = sum(c.completion_tokens for g in groups for c in g)
            rows.append((label, len(calls), tokens, seconds, engine.stats.model_calls - before))
        engine.close()

    print(
        f"model: {args.model}   prompts: {len(requests)} x {args.samples} samples   max_tokens: {args.max_tokens}"
        f"   threads: {os.cpu_count()}"
    )
    print(f"| {'path':<28} | samples | model calls | tokens | seconds | tokens/s | overhead vs raw |")
    print(f"|{'-' * 30}|---------|-------------|--------|---------|----------|-----------------|")
    for label, samples, tokens, seconds, calls_made in rows:
        rate = tokens / seconds if seconds else float("inf")
        overhead = "" if label.startswith("raw") else f"{(seconds - raw_s) / raw_s * 100:+.1f}%"
        print(
            f"| {label:<28} | {samples:>7} | {calls_made:>11} | {tokens:>6} | {seconds:>7.2f} | {rate:>8.1f} | "
            f"{overhead:>15} |"
        )


if __name__ == "__main__":
    main()
