"""Does the supervision selection matter? (issue 26 item 1, methods §14): SFT of a small student on equal-size sets
of teacher traces chosen by different selection policies, compared on held-out problems over seeds.

    python bench/sft_selection.py [--config bench/sft_selection.yaml] [--policies hard_first_v1 correct_only_v1]
                                  [--seeds 0 1 2] [--size N] [--out bench/results/sft_selection.md]

1. Prepare (cached): `gradus run` grades the config's pool on the student, then its supervision stage has the
   teacher write traces and every configured policy select and export them (`exports/<student>/supervision/`).
2. Every policy's set is cut to the same size: its first `--size` rows in the policy's order (default: the smallest
   policy's size), exactly the TRL SFT export a user would train on.
3. Held-out problems are drawn fresh from the pool's procedural families and knobs (`heldout`) and one knob up
   (`hard`), disjoint from every pool problem (`scoring.training.evaluation.heldout_problems`).
4. For each (policy, seed) not yet in `<data root>/sft_selection/results.jsonl`: a LoRA SFT run
   (`scoring.training.sft`), then greedy held-out answers with the trace prompt, verified; the row is appended.
   The untrained student is evaluated once the same way (the baseline; greedy decoding needs no seed).
Rerunning resumes: model calls are cached and finished (policy, seed) runs are read back, not trained again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

BASELINE = "none (no SFT)"
HELDOUT_SEED = 1_000_003


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=HERE / "sft_selection.yaml")
    parser.add_argument("--policies", nargs="+", default=["hard_first_v1", "correct_only_v1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--size", type=int, help="traces per policy (default: the smallest policy's set)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--per-knob", type=int, default=5, help="held-out problems per (family, knob)")
    parser.add_argument("--max-tokens", type=int, default=256, help="held-out answer budget (tokens)")
    parser.add_argument("--prepare-only", action="store_true", help="grade and trace, then stop")
    parser.add_argument("--report-only", action="store_true", help="write the table from the finished runs only")
    parser.add_argument("--skip-prepare", action="store_true", help="reuse the stored exports (no `gradus run`)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sft_selection.md")
    args = parser.parse_args()

    config_path = args.config.resolve()
    if not (args.report_only or args.skip_prepare):
        prepare(config_path)
    if args.prepare_only:
        return
    from scoring.config import load_config, resolve_data_root

    config = load_config(config_path)
    root = resolve_data_root(config)
    sets = policy_sets(root.path / "exports" / config.student.id / "supervision", args.policies)
    size = args.size or min(len(rows) for rows in sets.values())
    if size < 1 or any(len(rows) < size for rows in sets.values()):
        raise SystemExit(f"sft_selection: --size {size} but the sets hold { ({p: len(r) for p, r in sets.items()}) }")
    sets = {policy: rows[:size] for policy, rows in sets.items()}
    results = root.path / "sft_selection" / "results.jsonl"
    if not args.report_only:
        run_all(config, root, sets, args, results)
    report(config, config_path, sets, args, results)


def prepare(config_path: Path) -> None:
    """Grade the pool on the student and collect, select and export the teacher's traces (cached model calls)."""
    from pipelines.cli import main as gradus

    # `gradus run` materializes every asset, the supervision stage included (it is enabled in the config)
    print(f"sft_selection: gradus run --config {config_path}", flush=True)
    if gradus(["run", "--config", str(config_path)]) != 0:
        raise SystemExit("sft_selection: `gradus run` failed")


def policy_sets(export_dir: Path, policies: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each policy's TRL SFT export rows, in the policy's order."""
    import pyarrow.parquet as pq

    sets = {}
    for policy in policies:
        path = export_dir / policy / "trl" / "train-00000.parquet"
        if not path.is_file():
            raise SystemExit(f"sft_selection: no export for policy {policy!r} at {path}: list it in the config")
        sets[policy] = sorted(pq.read_table(path).to_pylist(), key=lambda r: r["position"])
    return sets


def _set_hash(rows: list[dict[str, Any]]) -> str:
    keys = [(r["problem_id"], r["model_id"], r["sample_index"]) for r in rows]
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]


def _heldout(root: Any, per_knob: int) -> Any:
    from scoring.stages.problems import load_problems
    from scoring.training.evaluation import HeldoutConfig, heldout_problems

    return heldout_problems(load_problems(root), HeldoutConfig(per_knob=per_knob, hard_per_family=4, seed=HELDOUT_SEED))


def run_all(config: Any, root: Any, sets: dict[str, list[dict[str, Any]]], args: Any, results: Path) -> None:
    """Evaluate the baseline and train + evaluate every missing (policy, seed), appending one row per unit."""
    from scoring.grading.verify import Verifier
    from scoring.supervision.traces import TRACE_PROMPTS
    from scoring.training.sft import SFT_METHOD, SftConfig, train_sft
    from scoring.training.student import load_student

    heldout = _heldout(root, args.per_knob)
    print(f"sft_selection: held-out { ({k: len(v) for k, v in heldout.problems.items()}) }", flush=True)
    base = SftConfig(model=config.student.engine.model, epochs=args.epochs, learning_rate=args.learning_rate)
    eval_key = {"prompt": config.supervision.traces.prompt, "max_tokens": args.max_tokens, "per_knob": args.per_knob}
    done = _read(results)
    with Verifier(config.verify) as verifier:

        def evaluate(model: Any, tokenizer: Any) -> dict[str, float]:
            from scoring.training.evaluation import evaluate_policy

            rows = evaluate_policy(
                model, tokenizer, heldout, verifier=verifier, prompt=eval_key["prompt"],
                max_tokens=args.max_tokens, prompts=TRACE_PROMPTS,
            )  # fmt: skip
            return {f"{r['split']}_{k}": r[k] for r in rows for k in ("n", "correct", "accuracy", "tokens", "seconds")}

        unit = {"policy": BASELINE, "seed": None, **eval_key}
        if not _has(done, unit):
            started, cpu = time.perf_counter(), time.process_time()
            model, tokenizer, _ = load_student(base.model, root.models_dir)
            scores = evaluate(model, tokenizer)
            row = {**unit, **scores, "seconds": round(time.perf_counter() - started, 1)}
            row["cpu_seconds"] = round(time.process_time() - cpu, 1)
            _append(results, row, done)
        for seed in args.seeds:  # seed by seed, so an interrupted comparison stays balanced
            for policy, rows in sets.items():
                sft = base.model_copy(update={"seed": seed})
                unit = {"policy": policy, "seed": seed, "size": len(rows), "set": _set_hash(rows), **eval_key}
                unit["sft"] = {"method": SFT_METHOD, **sft.model_dump(exclude={"seed"})}
                if _has(done, unit):
                    continue
                print(f"sft_selection: {policy} seed {seed} ({len(rows)} traces)", flush=True)
                run = train_sft(rows, sft, root.models_dir, root.path / "sft_selection" / "scratch")
                cpu = time.process_time()
                scores = evaluate(run.model, run.tokenizer)
                row = {**unit, **scores, "train_seconds": run.seconds, "train_cpu_seconds": run.cpu_seconds}
                row |= {"steps": run.steps, "train_loss": run.train_loss, "eval_cpu_seconds": time.process_time() - cpu}
                _append(results, row, done)
                print(f"  -> {scores}", flush=True)


def _read(results: Path) -> list[dict[str, Any]]:
    if not results.is_file():
        return []
    return [json.loads(line) for line in results.read_text().splitlines() if line.strip()]


def _has(done: list[dict[str, Any]], unit: dict[str, Any]) -> bool:
    return any(all(row.get(k) == v for k, v in unit.items()) for row in done)


def _append(results: Path, row: dict[str, Any], done: list[dict[str, Any]]) -> None:
    """Append one finished unit (a line is written whole and fsynced: a crash loses at most the unit running)."""
    results.parent.mkdir(parents=True, exist_ok=True)
    row = {**row, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load": os.getloadavg()[0]}
    with open(results, "a") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    done.append(row)


def _composition(rows: list[dict[str, Any]]) -> dict[str, str]:
    def mean(values: list[float]) -> str:
        return f"{sum(values) / len(values):.2f}" if values else "–"

    return {
        "correct_share": mean([float(r["verdict"] == "correct") for r in rows]),
        "student_pass_rate": mean([r["pass_rate"] for r in rows]),
        "step_error_rate": mean([r["step_error_rate"] for r in rows if r["step_error_rate"] is not None]),
    }


def summary_rows(sets: dict[str, list[dict[str, Any]]], done: list[dict[str, Any]], args: Any) -> list[dict[str, str]]:
    """One row per policy (and the baseline): seeds, held-out and hard accuracy as mean [95% t-interval]."""
    from scoring.training.ablation_report import mean_interval

    def fmt(values: list[float]) -> str:
        if not values:
            return "–"
        mean, lo, hi = mean_interval(values)
        return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if len(values) > 1 else f"{mean:.3f}"

    eval_match = {"max_tokens": args.max_tokens, "per_knob": args.per_knob}
    out = []
    for policy in [BASELINE, *sets]:
        runs = [
            r
            for r in done
            if r["policy"] == policy
            and all(r.get(k) == v for k, v in eval_match.items())
            and (policy == BASELINE or (r["seed"] in args.seeds and r["set"] == _set_hash(sets[policy])))
        ]
        composition = _composition(sets[policy]) if policy in sets else dict.fromkeys(COMPOSITION, "–")
        out.append(
            {
                "policy": policy,
                "seeds": str(len(runs)) if policy != BASELINE else "– (greedy)",
                "traces": str(len(sets[policy])) if policy in sets else "0",
                **composition,
                "heldout_acc": fmt([r["heldout_accuracy"] for r in runs if "heldout_accuracy" in r]),
                "hard_acc": fmt([r["hard_accuracy"] for r in runs if "hard_accuracy" in r]),
                "train_cpu_s": _mean_text([r["train_cpu_seconds"] for r in runs if "train_cpu_seconds" in r]),
            }
        )
    return out


def _mean_text(values: list[float]) -> str:
    return f"{sum(values) / len(values):.0f}" if values else "–"


def paired_difference(sets: dict[str, list[dict[str, Any]]], done: list[dict[str, Any]], args: Any) -> str:
    """Held-out accuracy of the first policy minus the second, per seed (same seed: same LoRA init and batch
    order draw), as mean [95% t-interval]."""
    from scoring.training.ablation_report import mean_interval

    first, second = list(sets)[:2]
    by = {(r["policy"], r["seed"]): r["heldout_accuracy"] for r in done if r.get("max_tokens") == args.max_tokens}
    diffs = [by[(first, s)] - by[(second, s)] for s in args.seeds if (first, s) in by and (second, s) in by]
    if len(diffs) < 2:
        return f"{first} - {second}: fewer than 2 seeds with both runs"
    mean, lo, hi = mean_interval(diffs)
    return f"{first} - {second}, held-out accuracy per seed: {mean:+.3f} [{lo:+.3f}, {hi:+.3f}] over {len(diffs)} seeds"


COMPOSITION = ("correct_share", "student_pass_rate", "step_error_rate")
COLUMNS = ("policy", "seeds", "traces", *COMPOSITION, "heldout_acc", "hard_acc", "train_cpu_s")


def _status(sets: dict[str, list[dict[str, Any]]], done: list[dict[str, Any]], args: Any) -> str:
    wanted = {(p, seed) for p in sets for seed in args.seeds}
    finished = {(r["policy"], r["seed"]) for r in done if r.get("max_tokens") == args.max_tokens} & wanted
    if len(finished) == len(wanted):
        return f"Complete: {len(wanted)} of {len(wanted)} policy x seed runs."
    return (
        f"**Incomplete: {len(finished)} of {len(wanted)} policy x seed runs finished** (the rest resume with the "
        "same command; finished runs are read back, not trained again). No conclusion can be drawn yet."
    )


def _unit_lines(done: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in done:
        scores = ", ".join(f"{k} {r[k]:.3f}" for k in ("heldout_accuracy", "hard_accuracy") if k in r)
        cost = (
            f"train {r['train_seconds']:.0f} s wall / {r['train_cpu_seconds']:.0f} s CPU, "
            if "train_seconds" in r
            else ""
        )
        lines.append(
            f"- {r['policy']} seed {r['seed']}: {scores}; {cost}eval {r.get('heldout_seconds', 0):.0f} s; "
            f"load {r['load']:.1f} at {r['finished_at']}"
        )
    return lines


def report(config: Any, config_path: Path, sets: dict[str, list[dict[str, Any]]], args: Any, results: Path) -> None:
    """Print the table and write it, with the settings, to `--out`."""
    from scoring.stages.report import markdown_table

    done = _read(results)
    table = markdown_table(summary_rows(sets, done, args), COLUMNS)
    difference = paired_difference(sets, done, args)
    print(table + "\n\n" + difference)
    heldout = next((r for r in done if r["policy"] == BASELINE and r.get("max_tokens") == args.max_tokens), {})
    teacher = config.teacher.model if config.teacher else config.student.engine.model
    size_flag = f" --size {args.size}" if args.size else ""
    lines = [
        "# Does the supervision selection matter? (SFT on equal-size sets)",
        "",
        f"Command: `python bench/sft_selection.py --config {config_path.name} --policies {' '.join(sets)} "
        f"--seeds {' '.join(map(str, args.seeds))}{size_flag}`. Student `{config.student.engine.model}`, teacher "
        f"`{teacher}` ({config.supervision.traces.samples} traces per problem, prompt "
        f"`{config.supervision.traces.prompt}`); each set is a policy's first {len(next(iter(sets.values())))} "
        f"traces; LoRA SFT (r 16) for {args.epochs} epochs at learning rate {args.learning_rate}, batch 4. "
        f"Held-out: greedy answers with the trace prompt, {args.max_tokens} tokens, verified; "
        f"`heldout` n = {heldout.get('heldout_n', '?')}, `hard` n = {heldout.get('hard_n', '?')}. "
        "Intervals: 95% t over seeds.",
        "",
        table,
        "",
        _status(sets, done, args),
        "",
        f"Paired difference: {difference}.",
        "",
        "Columns: correct_share = traces whose final answer verifies; student_pass_rate = the student's pass rate on "
        "the traced problems; step_error_rate = arith_steps_v1; train_cpu_s = CPU seconds of one SFT run.",
        "",
        "Nothing was tuned on these results: the SFT settings (LoRA r 16, learning rate 2e-4, 3 epochs, batch 4) are "
        "the GRPO trainer's LoRA settings, fixed before the first run; the pool, held-out draw and set size were "
        "fixed in the config before any SFT run.",
        "",
        "Runs (one line per unit, from the results file):",
        "",
        *_unit_lines(done),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
