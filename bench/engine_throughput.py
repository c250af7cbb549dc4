"""Tokens/s of the embedded backend: llama-cpp-python's plain loop (one sample at a time, what the backend did
before issue 22) against Gradus's batched decoding, on the same prompts and model, in one run.

    nice python bench/engine_throughput.py [--models 0.5b 1.5b] [--ks 4 8 16] [--prompts 4] [--max-tokens 128]
        [--threads 2] [--busy-only] [--out bench/results/engine_throughput.md]

Rows per model (each row in a fresh child process, so the OpenMP settings and the load on the machine are the
row's own; the model load is not timed):
- `library loop`: `Llama.create_chat_completion` once per sample, one sample at a time — the baseline;
- `gradus, parallel 1`: the batch decoder one sample at a time (its own overhead, no batching);
- `gradus, 1 prompt x K` for each K: the K samples of one prompt decoded together (one prompt evaluation), at the
  default `parallel` (7, narrow: one decode call of at most 7 rows, weights as stored; K > 7 takes two calls
  per step while more than 7 are live) and at `parallel 16` (wide: one call of max(8, live) rows per step,
  llama.cpp's repacked weights; the setting of the default `gradus.yaml`);
- `gradus, P prompts x 8` and `gradus, 8 prompts x 1`, narrow and wide: continuous batching over several
  requests (a request of one sample packs with others too);
- `one core busy`: the same with another process spinning on one of the cores (`python -c "while True: pass"`),
  under libgomp's default wait policy (threads spin ~300k iterations before sleeping) and under the backend's
  default (`OMP_WAIT_POLICY=PASSIVE`, set by `engines.embedded` unless the user set a policy).

The prompts are the student's rollout requests (`scoring.grading.rollouts.solve_request`, temperature 0.8, top_p 0.95)
for procedural arithmetic at knobs 2-4. Texts differ between the loop and the batched rows (another sampler
implementation and batch arithmetic), so tokens differ; tokens/s is completion tokens over wall seconds of
generation. The time split comes from the decoder's counters: prompt evaluation, batched `llama_decode`
steps, sampling + detokenizing, and the rest (Python bookkeeping per token).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = {"0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m", "1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m"}
LIBGOMP_DEFAULT = {"GOMP_SPINCOUNT": "300000"}  # libgomp's own default when no wait policy is set


def child(spec: dict) -> dict:
    """Run one row in this process: load the model, then time the generation."""
    from engines.base import SampleCall
    from engines.config import EngineConfig, build_backend
    from engines.models import resolve_model_file
    from scoring.grading.rollouts import RolloutConfig, solve_request
    from synthesis.families import FAMILIES

    problems = FAMILIES.get("arithmetic")().sample(seed=0, difficulties=[2, 3, 4], per_level=3)[: spec["prompts"]]
    rollouts = RolloutConfig(k=spec["k"], max_tokens=spec["max_tokens"], seed=0)
    requests = [solve_request(p, rollouts) for p in problems]
    calls = [SampleCall(r.messages, r.sampling, i) for r in requests for i in range(r.sampling.n)]
    models = Path(spec["models_dir"])
    if spec["mode"] == "loop":
        from llama_cpp import Llama

        path, _ = resolve_model_file(spec["model"], models)
        llm = Llama(model_path=str(path), n_ctx=1024, n_threads=spec["threads"], verbose=False)
        started, tokens = time.perf_counter(), 0
        for call in calls:
            out = llm.create_chat_completion(
                messages=call.messages_json(),  # type: ignore[arg-type]
                temperature=call.sampling.temperature,
                top_p=call.sampling.top_p,
                max_tokens=call.sampling.max_tokens,
                seed=call.sample_seed,
            )
            tokens += int(out["usage"]["completion_tokens"])  # type: ignore[index]
        return {"tokens": tokens, "seconds": time.perf_counter() - started, "samples": len(calls)}
    config = EngineConfig(model=spec["model"], n_ctx=1024, n_threads=spec["threads"], parallel=spec["parallel"])
    backend = build_backend(config, models)
    started = time.perf_counter()
    tokens = sum(c.completion_tokens for _, c in backend.complete(calls))
    seconds = time.perf_counter() - started
    times = backend.decode_times  # type: ignore[attr-defined]
    split = {"prompt_s": times.prompt_s, "decode_s": times.decode_s, "sample_s": times.sample_s}
    return {"tokens": tokens, "seconds": seconds, "samples": len(calls), "steps": times.steps, **split}


def run_row(spec: dict, *, busy: bool, env: dict[str, str] | None = None) -> dict:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if spinner is not None:
            time.sleep(1.0)
        out = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def model_rows(args: argparse.Namespace, name: str) -> list[tuple[str, dict]]:
    base = {"model": MODELS[name], "models_dir": args.models_dir, "threads": args.threads}
    base |= {"max_tokens": args.max_tokens, "prompts": 1}
    rows: list[tuple[str, dict]] = []

    def add(label: str, spec: dict, *, busy: bool = False, env: dict[str, str] | None = None) -> None:
        result = run_row({**base, **spec}, busy=busy, env=env)
        rows.append((label, result))
        print(f"  {name} {label}: {result['tokens'] / result['seconds']:.1f} tok/s", file=sys.stderr, flush=True)

    if not args.busy_only:
        add("library loop, one at a time", {"mode": "loop", "k": args.loop_samples})
        add("gradus, parallel 1", {"mode": "batched", "k": args.loop_samples, "parallel": 1})
        for parallel, side in ((None, "narrow"), (16, "wide")):
            for k in args.ks:
                add(f"gradus, 1 prompt x {k}, {side}", {"mode": "batched", "k": k, "parallel": parallel})
            add(
                f"gradus, {args.prompts} prompts x 8, {side}",
                {"mode": "batched", "k": 8, "parallel": parallel, "prompts": args.prompts},
            )
            add(f"gradus, 8 prompts x 1, {side}", {"mode": "batched", "k": 1, "parallel": parallel, "prompts": 8})
    busy_k = max(args.ks)
    add("one core busy: library loop", {"mode": "loop", "k": args.loop_samples // 2}, busy=True)
    for policy, env in (("libgomp default wait", LIBGOMP_DEFAULT), ("passive wait (default)", None)):
        add(
            f"one core busy: gradus, 1 prompt x {busy_k}, narrow, {policy}",
            {"mode": "batched", "k": busy_k, "parallel": None},
            busy=True,
            env=env,
        )
    add(
        f"one core busy: gradus, 1 prompt x {busy_k}, wide, passive wait (default)",
        {"mode": "batched", "k": busy_k, "parallel": 16},
        busy=True,
    )
    return rows


def table(name: str, rows: list[tuple[str, dict]]) -> list[str]:
    lines = [
        f"**{MODELS[name]}**",
        "",
        "| row | samples | tokens | seconds | tokens/s | vs library loop | busy / idle | prompt eval | decode"
        " | sampling | python |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rates = {label: r["tokens"] / r["seconds"] for label, r in rows}
    loops = {busy: r for label, r in rows for busy in (label.startswith("one core busy"),) if "library loop" in label}
    for label, r in rows:
        rate = r["tokens"] / r["seconds"]
        base = loops.get(label.startswith("one core busy"))
        ratio = f"{rate / (base['tokens'] / base['seconds']):.2f}x" if base else "-"
        idle = rates.get(_idle_label(label)) if label.startswith("one core busy") else None
        of_idle = f"{rate / idle:.0%}" if idle else "-"
        split = ["-"] * 4
        if "decode_s" in r:
            rest = r["seconds"] - r["prompt_s"] - r["decode_s"] - r["sample_s"]
            split = [f"{r[k] / r['seconds']:.0%}" for k in ("prompt_s", "decode_s", "sample_s")] + [
                f"{rest / r['seconds']:.0%}"
            ]
        lines.append(
            f"| {label} | {r['samples']} | {r['tokens']} | {r['seconds']:.1f} | {rate:.1f} | {ratio} | {of_idle} | "
            + " | ".join(split)
            + " |"
        )
    return lines


def _idle_label(busy_label: str) -> str:
    """The idle row a one-core-busy row is measured against (same decoding, no other process)."""
    row = busy_label.removeprefix("one core busy: ")
    return "library loop, one at a time" if row == "library loop" else row.rsplit(", ", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["0.5b", "1.5b"])
    parser.add_argument("--ks", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--prompts", type=int, default=4, help="prompts in the several-prompts row")
    parser.add_argument("--loop-samples", type=int, default=8, help="samples in the one-at-a-time rows")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--busy-only", action="store_true", help="only the one-core-busy rows")
    parser.add_argument("--models-dir", default=os.environ.get("GRADUS_HOME", ".gradus") + "/models")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    header = (
        f"cores: {os.cpu_count()}   llama.cpp threads: {args.threads}   max_tokens: {args.max_tokens}   "
        f"temperature 0.8, top_p 0.95   command: python bench/engine_throughput.py {' '.join(sys.argv[1:])}"
    )
    lines = [header, ""]
    for name in args.models:
        lines += [*table(name, model_rows(args, name)), ""]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
