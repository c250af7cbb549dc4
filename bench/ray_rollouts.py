"""Rollouts (sampling + verification) in one process vs on Ray with N workers, cold and warm cache, on the
embedded model (issue 11 items 3 and 5).

    nice python bench/ray_rollouts.py [--model NAME_OR_GGUF] [--problems 8] [--k 2] [--max-tokens 64]
        [--workers 2] [--models-dir .gradus/models]

Every path starts from its own empty completion cache (a fresh data root sharing the model files); "warm"
reruns the same path on that cache (on the Ray path a fully cached pool is served by the driver, with no Ray
job). The single process runs llama.cpp on every core, then on one; each Ray actor gets `cpus_per_worker` (1)
core. On one small machine Ray buys little and costs its start-up; the point of the Ray path is a pool of nodes
or GPUs. Ray is started once, before the table (its start is printed); a Ray job's seconds include starting its
actors (model load + verifier), also shown apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import EngineConfig, build_engine  # noqa: E402
from engines.models import is_model_path, resolve_model_file  # noqa: E402
from scoring.config import DistributedConfig, ProjectConfig, StudentConfig  # noqa: E402
from scoring.grading.ray_config import RayConfig  # noqa: E402
from scoring.grading.ray_rollouts import run_rollouts_on_ray, start_local_ray  # noqa: E402
from scoring.grading.rollouts import RolloutConfig, RolloutResult, run_rollouts  # noqa: E402
from scoring.grading.verify import Verifier  # noqa: E402
from scoring.storage import DataRoot  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402

# path, samples, model calls, completion tokens generated or served, seconds, actor start seconds (Ray only)
Row = tuple[str, int, int, int, float, float | None]


def _root(base: Path, name: str, models: Path) -> DataRoot:
    path = base / name
    path.mkdir()
    (path / "models").symlink_to(models.resolve(), target_is_directory=True)
    return DataRoot(path)


def _tokens(result: RolloutResult) -> int:
    return sum(result.rollouts.column("completion_tokens").to_pylist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("GRADUS_HOME", ".gradus")) / "models")
    args = parser.parse_args()
    import ray

    models = args.models_dir
    resolve_model_file(args.model, models)  # assemble the embedded GGUF once, before any timing
    engine_config = EngineConfig(model=args.model, n_ctx=1024)
    family = FAMILIES.get("arithmetic")()
    problems = family.sample(seed=0, difficulties=[1, 2, 3, 4], per_level=max(1, args.problems // 4))
    rollouts = RolloutConfig(k=args.k, max_tokens=args.max_tokens, seed=0)
    samples = len(problems) * args.k
    rows: list[Row] = []

    with tempfile.TemporaryDirectory(prefix="gradus-bench-ray-") as tmp, ExitStack() as stack:
        base = Path(tmp)
        verifier = stack.enter_context(Verifier())
        for threads in (None, 1):  # llama.cpp on every core, then on one (what each Ray actor gets)
            single = _root(base, f"single-{threads}", models)
            config = engine_config.model_copy(update={"n_threads": threads})
            with build_engine(config, single.models_dir, single.cache_path) as engine:
                for state in ("cold", "warm"):
                    calls, started = engine.stats.model_calls, time.perf_counter()
                    result = run_rollouts(
                        problems, engine, student_id="bench", config=rollouts, verifier=verifier, progress=False
                    )
                    seconds = time.perf_counter() - started
                    label = f"single process, {threads or os.cpu_count()} thread(s): {state}"
                    rows.append((label, samples, engine.stats.model_calls - calls, _tokens(result), seconds, None))

        ray_start = start_local_ray(args.workers)
        try:
            ray_root = _root(base, "ray", models)
            config = ProjectConfig(
                data_root=str(ray_root.path),
                student=StudentConfig(id="bench", engine=engine_config),
                rollouts=rollouts,
                distributed=DistributedConfig(rollouts="ray", ray=RayConfig(num_workers=args.workers, batch_size=4)),
            )
            with build_engine(engine_config, ray_root.models_dir, ray_root.cache_path) as engine:
                for label in (f"Ray, {args.workers} workers: cold", "Ray path: warm (all cached: no Ray job)"):
                    calls = engine.stats.model_calls
                    run = run_rollouts_on_ray(
                        problems,
                        student=config.ray_student(),
                        root=ray_root,
                        engine=engine,
                        verifier=verifier,
                        progress=False,
                    )
                    row = (label, samples, engine.stats.model_calls - calls, _tokens(run.result), run.seconds)
                    rows.append((*row, run.worker_init_seconds))
        finally:
            ray.shutdown()

    model = Path(args.model).name if is_model_path(args.model) else args.model
    print(
        f"model: {model}   problems: {len(problems)} x k={args.k}   max_tokens: {args.max_tokens}   "
        f"cores: {os.cpu_count()}   load average at the end: {os.getloadavg()[0]:.1f}   ray.init: {ray_start:.1f} s"
    )
    print("| path | samples | model calls | completion tokens | seconds | actor start (s) | rollouts/s | tokens/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, n, calls, tokens, seconds, init in rows:
        start = f"{init:.1f}" if init is not None else "-"
        print(
            f"| {label} | {n} | {calls} | {tokens} | {seconds:.1f} | {start} | {n / seconds:.2f} | "
            f"{tokens / seconds:.1f} |"
        )


if __name__ == "__main__":
    main()
