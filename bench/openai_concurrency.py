"""Requests/s, tokens/s, peak memory and retries of the openai backend at a given concurrency, against the real
llama.cpp server (llama-cpp-python, the embedded 0.5B model on loopback) and against our fault-injecting server.

    nice python bench/openai_concurrency.py [--requests 200] [--concurrency 1,8,32] [--max-tokens 3]
        [--fault-requests 2000] [--fault-delay 0.02] [--skip-real]

Rows:
- `llama.cpp server`: distinct prompts ("Reply with the number N"), greedy, `--max-tokens` tokens each. llama.cpp's
  server runs one request at a time, so concurrency buys no speed there; the rows show the client's overhead and
  that memory stays flat as the requests in flight grow.
- `fault server, ok`: the client's own ceiling against a server that answers after `--fault-delay` seconds.
- `fault server, 20% faults`: 503s, 429 (Retry-After 0.05 s), connection resets and truncated JSON on the first
  attempt of one prompt in five; every one must succeed on retry (retries are counted).

Peak MB is tracemalloc's peak of Python allocations during the run (client, results; not the server process).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.base import Message, SampleCall, SamplingParams  # noqa: E402
from engines.models import EMBEDDED_MODELS, ensure_model  # noqa: E402
from engines.openai_compat import OpenAICompatBackend  # noqa: E402
from tests.engines.fault_server import fault_server  # noqa: E402
from tests.engines.servers import llama_cpp_server  # noqa: E402

SMALL_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
Row = tuple[str, int, int, float, int, float, int, int]


def number_calls(count: int, max_tokens: int) -> list[SampleCall]:
    sampling = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens, seed=0)
    system = Message("system", "Reply with the number only.")
    return [
        SampleCall((system, Message("user", f"Reply with the number {100 + i}")), sampling, 0) for i in range(count)
    ]


def measure(label: str, backend: OpenAICompatBackend, level: int, calls: list[SampleCall]) -> Row:
    """Run `calls` through `backend`; the row: label, requests, concurrency, seconds, tokens, peak MB, retries,
    failures."""
    tracemalloc.start()
    started = time.perf_counter()
    results = dict(backend.complete(calls))
    seconds = time.perf_counter() - started
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    stats = backend.stats_dict()
    backend.close()
    tokens = sum(c.completion_tokens for c in results.values())
    failed = sum(not c.ok for c in results.values())
    return label, len(calls), level, seconds, tokens, peak_mb, int(stats["openai_retries"]), failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per row against the llama.cpp server")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--max-tokens", type=int, default=3)
    parser.add_argument("--fault-requests", type=int, default=2000)
    parser.add_argument("--fault-delay", type=float, default=0.02, help="fault server's seconds per answer")
    parser.add_argument("--skip-real", action="store_true", help="only the fault-server rows")
    parser.add_argument("--models-dir", default=os.environ.get("GRADUS_HOME", ".gradus") + "/models")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    rows: list[Row] = []
    if not args.skip_real:
        model = ensure_model(EMBEDDED_MODELS[SMALL_MODEL], Path(args.models_dir))
        with llama_cpp_server(model, "small", Path(args.models_dir) / "bench_llama_server.log") as url:
            for level in levels:
                backend = OpenAICompatBackend(url, "small", max_concurrency=level, timeout_s=1800)
                rows.append(measure("llama.cpp server", backend, level, number_calls(args.requests, args.max_tokens)))

    with fault_server(f"delay={args.fault_delay}") as server:
        for level in levels:
            backend = OpenAICompatBackend(server.url, "m", max_concurrency=level, timeout_s=60)
            rows.append(measure("fault server, ok", backend, level, number_calls(args.fault_requests, args.max_tokens)))

    rng = random.Random(0)
    kinds = ["503", "429=0.05", "reset", "truncated"]
    faulty = {f"Reply with the number {100 + i}": rng.choice(kinds) for i in range(args.fault_requests)}
    faulty = {content: kind for content, kind in faulty.items() if rng.random() < 0.2}

    def plan(body: dict, attempt: int) -> str:
        content = body["messages"][-1]["content"]
        return faulty[content] if attempt == 0 and content in faulty else f"delay={args.fault_delay}"

    with fault_server(plan) as server:
        backend = OpenAICompatBackend(
            server.url, "m", max_concurrency=max(levels), timeout_s=60, backoff_base_s=0.05, breaker_failures=10_000
        )
        calls = number_calls(args.fault_requests, args.max_tokens)
        rows.append(measure("fault server, 20% faults", backend, max(levels), calls))

    print(f"max_tokens: {args.max_tokens}   fault delay: {args.fault_delay} s   cores: {os.cpu_count()}")
    header = ["server", "requests", "concurrency", "seconds", "req/s", "tok/s", "peak MB", "retries", "failed"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for label, requests, level, seconds, tokens, peak_mb, retries, failed in rows:
        print(
            f"| {label} | {requests} | {level} | {seconds:.2f} | {requests / seconds:.1f} | "
            f"{tokens / seconds:.1f} | {peak_mb:.1f} | {retries} | {failed} |"
        )


if __name__ == "__main__":
    main()
