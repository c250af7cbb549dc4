"""Tokens/s and requests/s of a raw backend vs the same prompts through the Gradus engine + cache (cold, warm),
for the embedded llama.cpp backend and for the openai backend against llama-cpp-python's server on loopback
(the same GGUF), and Gradus on Ray with 2 workers (issue 11 item 5).

    nice python bench/engine_overhead.py [--backend embedded|openai|both|none] [--model NAME_OR_GGUF]
        [--problems 6] [--samples 2] [--max-tokens 128] [--concurrency 32] [--ray-workers 2]

Every row samples the same requests: the student's rollout requests (`scoring.grading.rollouts.solve_request`) for
procedural arithmetic, so the Ray rows — `scoring.grading.ray_rollouts.run_rollouts_on_ray`, Ray Data `map_batches` over
actors that each hold one embedded engine with one llama.cpp thread — draw the very samples (same cache keys) the
other rows draw. The Ray rows also verify each sample (the rollout stage's work) and their seconds include starting
the actors (model load + verifier); Ray itself is started once before them (`ray.init(num_cpus=workers)`), its
start printed apart. Cold: an empty cache. Warm through Ray: the same job again with no driver engine, so the
actors start and read every sample from the main cache (zero model calls). Warm, driver: the driver's engine finds
every sample in the main cache and serves the pool without a Ray job.

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

from engines import ChatRequest, Engine  # noqa: E402
from engines.base import Backend, SampleCall  # noqa: E402
from engines.cache import CompletionCache  # noqa: E402
from engines.config import EngineConfig, build_backend, build_engine  # noqa: E402
from engines.models import resolve_model_file  # noqa: E402
from scoring.grading.rollouts import RolloutConfig, solve_request  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402
from synthesis.problem import Problem  # noqa: E402

# path label, samples, completion tokens, seconds (None: not measured), model calls made
Row = tuple[str, int, int, float | None, int]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--backend", choices=("embedded", "openai", "both", "none"), default="both")
    parser.add_argument("--concurrency", type=int, default=32, help="openai: requests in flight")
    parser.add_argument("--ray-workers", type=int, default=2, help="0: no Ray rows")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="embedded: llama.cpp threads (default: all cores; on a machine shared with other model runs, fewer "
        "threads than cores avoids llama.cpp's spin-waiting threads stalling each other)",
    )
    parser.add_argument("--models-dir", default=os.environ.get("GRADUS_HOME", ".gradus") + "/models")
    args = parser.parse_args()

    family = FAMILIES.get("arithmetic")()
    problems = family.sample(seed=0, difficulties=[1, 2, 3], per_level=max(1, args.problems // 3))
    rollouts = RolloutConfig(k=args.samples, max_tokens=args.max_tokens, seed=0)  # temperature 0.8, top_p 0.95
    requests = [solve_request(p, rollouts) for p in problems]
    path, _ = resolve_model_file(args.model, Path(args.models_dir))
    rows: list[Row] = []
    if args.backend in ("embedded", "both"):
        backend = build_backend(EngineConfig(model=str(path), n_threads=args.threads), Path(args.models_dir))
        rows += engine_rows("llama.cpp (embedded)", backend, requests)
    if args.backend in ("openai", "both"):
        from tests.engines.servers import llama_cpp_server

        log = Path(args.models_dir) / "bench_engine_llama_server.log"
        with llama_cpp_server(path, "bench", log) as url:
            config = EngineConfig(backend="openai", model="bench", base_url=url, max_concurrency=args.concurrency)
            rows += engine_rows("openai (llama.cpp server)", build_backend(config, Path(args.models_dir)), requests)
    ray_start: float | None = None
    if args.ray_workers:
        ray_start, ray_result = ray_rows(args, problems, rollouts)
        rows += ray_result

    print(
        f"model: {args.model}   prompts: {len(requests)} x {args.samples} samples   max_tokens: {args.max_tokens}"
        f"   cores: {os.cpu_count()}   llama.cpp threads: {args.threads or 'all'} (Ray actors: 1 each)"
        f"   openai concurrency: {args.concurrency}"
        + (f"   ray.init: {ray_start:.1f} s" if ray_start is not None else "")
    )
    print(f"| {'path':<60} | samples | model calls | tokens | seconds | tokens/s | requests/s | overhead vs raw |")
    print(f"|{'-' * 62}|---------|-------------|--------|---------|----------|------------|-----------------|")
    raw_s: dict[str, float] = {}
    for label, samples, tokens, seconds, calls_made in rows:
        family = label.split(":")[0]
        if seconds is None:
            print(
                f"| {label:<60} | {samples:>7} | {'-':>11} | {'-':>6} | {'-':>7} | {'-':>8} | {'-':>10} | {'-':>15} |"
            )
            continue
        if label.endswith("raw backend"):
            raw_s[family] = seconds
        rate = tokens / seconds if seconds else float("inf")
        req_rate = samples / seconds if seconds else float("inf")
        base = raw_s.get(family)
        overhead = "" if label.endswith("raw backend") or not base else f"{(seconds - base) / base * 100:+.1f}%"
        print(
            f"| {label:<60} | {samples:>7} | {calls_made:>11} | {tokens:>6} | {seconds:>7.2f} | {rate:>8.1f} | "
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


def ray_rows(args: argparse.Namespace, problems: list[Problem], rollouts: RolloutConfig) -> tuple[float, list[Row]]:
    """Gradus on Ray with `args.ray_workers` actors (`run_rollouts_on_ray`): cold, warm through Ray, warm on the
    driver. Returns (`ray.init` seconds, rows); each row's tokens are those of the rollout rows produced."""
    import ray

    from scoring.config import DistributedConfig, ProjectConfig, StudentConfig
    from scoring.grading.ray_config import RayConfig
    from scoring.grading.ray_rollouts import run_rollouts_on_ray, start_local_ray
    from scoring.grading.verify import Verifier
    from scoring.storage import DataRoot

    models = Path(args.models_dir)
    samples = len(problems) * rollouts.k
    rows: list[Row] = []
    ray_start = start_local_ray(args.ray_workers)
    try:
        with tempfile.TemporaryDirectory(prefix="gradus-bench-ray-") as tmp, Verifier() as verifier:
            root = DataRoot(Path(tmp))
            root.models_dir.parent.mkdir(parents=True, exist_ok=True)
            root.models_dir.symlink_to(models.resolve(), target_is_directory=True)
            engine_config = EngineConfig(model=args.model, n_ctx=1024)
            config = ProjectConfig(
                data_root=str(root.path),
                student=StudentConfig(id="bench", engine=engine_config),
                rollouts=rollouts,
                distributed=DistributedConfig(
                    rollouts="ray", ray=RayConfig(num_workers=args.ray_workers, cpus_per_worker=1.0, batch_size=4)
                ),
            )
            name = f"gradus on Ray, {args.ray_workers} workers"
            for label in ("cold cache", "warm cache, via Ray"):
                run = run_rollouts_on_ray(
                    problems, student=config.ray_student(), root=root, verifier=verifier, progress=False
                )
                tokens = sum(run.result.rollouts.column("completion_tokens").to_pylist())
                # Workers write only what their model generated to their cache shards: rows seen = model calls.
                made = run.merge.rows_seen
                rows.append(
                    (f"{name}: {label} (actors {run.worker_init_seconds:.0f}s)", samples, tokens, run.seconds, made)
                )
            with build_engine(engine_config, root.models_dir, root.cache_path) as engine:
                run = run_rollouts_on_ray(
                    problems, student=config.ray_student(), root=root, engine=engine, verifier=verifier, progress=False
                )
                tokens = sum(run.result.rollouts.column("completion_tokens").to_pylist())
                rows.append((f"{name}: warm, driver only", samples, tokens, run.seconds, engine.stats.model_calls))
    finally:
        ray.shutdown()
    return ray_start, rows


if __name__ == "__main__":
    main()
