"""Rollouts spent vs band agreement with a fixed K=16 reference: fixed K, adaptive K, predictor + adaptive.

    python bench/rollout_savings.py [--recording bench/recordings/rollout_savings_k16.parquet] [--simulate 2000]

This is a REPLAY. `bench/record_rollouts.py` drew K=16 rollouts per problem from the real 0.5B student once,
through the pipeline and its cache (config: `bench/rollout_savings.yaml`). Each policy here is then run by
the same code the pipeline uses (`scoring.adaptive.run_sequential`), fed the recorded outcomes in their
sampled order (sample index 0, 1, 2, …), so a policy that stops after n rollouts sees exactly the first n
samples the pipeline would have drawn. The reference band of a problem is the band of its K=16 pass rate.

The predictor is cross-fitted: for each fold of problems it is trained on the other folds' K=16 grades (as
it would be trained on a student's earlier graded pools) and used only on the held-out fold.

`--simulate N` adds a clearly labelled SIMULATION: N problems whose true pass rates are drawn from the
recorded problems' posteriors, with fresh Bernoulli outcomes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from scoring.adaptive import (  # noqa: E402
    AdaptiveConfig,
    BandsConfig,
    credible_interval,
    fit_pool_prior,
    run_sequential,
)
from scoring.estimators import fresh_group_interval  # noqa: E402
from scoring.predictor import PassRatePredictor, screen  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORDING = HERE / "recordings" / "rollout_savings_k16.parquet"
K_REF = 16
BANDS = BandsConfig()

Outcomes = dict[str, list[bool | None]]


@dataclass(frozen=True)
class PolicyResult:
    name: str
    rollouts: int
    bands: dict[str, str | None]


def load_recording(path: Path) -> tuple[Outcomes, dict[str, dict[str, object]], dict[bytes, bytes]]:
    table = pq.read_table(path)
    rows = sorted(table.to_pylist(), key=lambda r: (r["problem_id"], r["sample_index"]))
    outcomes: Outcomes = {}
    problems: dict[str, dict[str, object]] = {}
    for row in rows:
        verdict = row["verdict"]
        outcomes.setdefault(row["problem_id"], []).append(None if verdict in {"timeout", "error"} else row["correct"])
        problems[row["problem_id"]] = {
            "problem_id": row["problem_id"],
            "question": row["question"],
            "family": row["family"],
            "difficulty_knob": row["difficulty_knob"],
            "source": "procedural",
        }
    return outcomes, problems, table.schema.metadata or {}


def band_of(sample: Sequence[bool | None]) -> str | None:
    evidence = [o for o in sample if o is not None]
    return BANDS.label(sum(evidence) / len(evidence)) if evidence else None


def replay(outcomes: Outcomes) -> Callable[[Mapping[str, tuple[int, int]]], dict[str, list[bool | None]]]:
    def draw(plan: Mapping[str, tuple[int, int]]) -> dict[str, list[bool | None]]:
        return {pid: outcomes[pid][first : first + count] for pid, (first, count) in plan.items()}

    return draw


def fixed(outcomes: Outcomes, k: int) -> PolicyResult:
    return PolicyResult(f"fixed K={k}", k * len(outcomes), {pid: band_of(o[:k]) for pid, o in outcomes.items()})


def adaptive(
    name: str,
    outcomes: Outcomes,
    config: AdaptiveConfig,
    priors: Mapping[str, tuple[float, float]] | None = None,
    screened: Mapping[str, str] | None = None,
) -> PolicyResult:
    screened = screened or {}
    open_ids = [pid for pid in outcomes if pid not in screened]
    result = run_sequential(open_ids, replay(outcomes), config, bands=BANDS, priors=priors)
    bands: dict[str, str | None] = {pid: s.band for pid, s in result.states.items()}
    bands |= dict(screened)
    return PolicyResult(name, result.rollouts_drawn, bands)


def cross_fitted_predictions(
    outcomes: Outcomes, problems: Mapping[str, dict[str, object]], folds: int = 5, seed: int = 0
) -> dict[str, object]:
    ids = sorted(outcomes)
    order = np.random.default_rng(seed).permutation(len(ids))
    predictions: dict[str, object] = {}
    for fold in range(folds):
        held = {ids[i] for i in order[fold::folds]}
        train = [pid for pid in ids if pid not in held]
        counts = [(sum(o is True for o in outcomes[p]), sum(o is not None for o in outcomes[p])) for p in train]
        model = PassRatePredictor(seed=seed).fit([problems[p] for p in train], counts)
        for pred in model.predict([problems[p] for p in sorted(held)]):
            predictions[pred.problem_id] = pred
    return predictions


def agreement(result: PolicyResult, reference: Mapping[str, str | None]) -> tuple[float, float]:
    """(share of problems in the reference band, share of reference-learnable problems called learnable)."""
    same = sum(result.bands.get(pid) == band for pid, band in reference.items())
    learnable = [pid for pid, band in reference.items() if band == "learnable"]
    recall = sum(result.bands.get(pid) == "learnable" for pid in learnable) / len(learnable) if learnable else 1.0
    return same / len(reference), recall


def print_policies(title: str, results: list[PolicyResult], reference: Mapping[str, str | None]) -> None:
    full = K_REF * len(reference)
    print(f"\n{title}")
    print("| policy | rollouts | per problem | fewer than K=16 | band agreement | learnable recall |")
    print("|---|---:|---:|---:|---:|---:|")
    for result in results:
        agree, recall = agreement(result, reference)
        per = result.rollouts / len(reference)
        saving = full / result.rollouts if result.rollouts else float("inf")
        print(f"| {result.name} | {result.rollouts} | {per:.2f} | {saving:.2f}x | {agree:.1%} | {recall:.1%} |")


def policies(
    outcomes: Outcomes, predictions: Mapping[str, object] | None, config: AdaptiveConfig
) -> list[PolicyResult]:
    results = [fixed(outcomes, k) for k in (4, 8, 16)]
    ci_uniform = config.model_copy(update={"prior": "uniform", "stop_rule": "credible_interval"})
    ci = f"{config.credible_level:.0%} CI in band"
    results.append(adaptive(f"adaptive: {ci}, uniform prior", outcomes, ci_uniform))
    ci_pool = config.model_copy(update={"stop_rule": "credible_interval"})
    results.append(adaptive(f"adaptive: {ci}, pool prior", outcomes, ci_pool))
    results.append(adaptive("adaptive: predictive, pool prior (default)", outcomes, config))
    if predictions is not None:
        priors = {pid: (p.alpha, p.beta) for pid, p in predictions.items()}  # type: ignore[attr-defined]
        results.append(adaptive("predictor prior + adaptive", outcomes, config, priors=priors))
        screened = screen(list(predictions.values()), BANDS.too_hard, BANDS.too_easy)  # type: ignore[arg-type]
        results.append(
            adaptive("predictor screen + prior + adaptive", outcomes, config, priors=priors, screened=screened)
        )
    return results


def calibration(outcomes: Outcomes, split: int = 8, level: float = 0.90) -> None:
    """Estimate from the first `split` rollouts, check the reported interval against the other ones."""
    first = {pid: [x for x in o[:split] if x is not None] for pid, o in outcomes.items()}
    fresh = {pid: [x for x in o[split:] if x is not None] for pid, o in outcomes.items()}
    pool = fit_pool_prior([(sum(v), len(v)) for v in first.values()])
    print(f"\nCalibration: estimate from rollouts 0-{split - 1}, check on rollouts {split}-{K_REF - 1} (fresh)")
    print(
        "| prior | fresh pass rate inside the 90% credible interval (post_lo..post_hi) "
        "| fresh pass rate inside the 90% fresh-group interval (fresh_lo..fresh_hi) |"
    )
    print("|---|---:|---:|")
    for name, prior in (("uniform Beta(1,1)", (1.0, 1.0)), (f"pool Beta({pool[0]:.2f},{pool[1]:.2f})", pool)):
        inside_ci = inside_pred = total = 0
        for pid in outcomes:
            k, n, m = sum(first[pid]), len(first[pid]), len(fresh[pid])
            if n == 0 or m == 0:
                continue
            lo, hi = credible_interval(k, n, prior, level)
            fresh_rate = sum(fresh[pid]) / m
            inside_ci += lo - 1e-9 <= fresh_rate <= hi + 1e-9
            low, high = fresh_group_interval(k, n, prior, m, level)
            inside_pred += low - 1e-9 <= fresh_rate <= high + 1e-9
            total += 1
        print(f"| {name} | {inside_ci / total:.1%} ({inside_ci}/{total}) | {inside_pred / total:.1%} |")


def true_rate_coverage(simulated: Outcomes, truth: Mapping[str, float], split: int = 8, level: float = 0.9) -> None:
    first = {pid: [x for x in o[:split] if x is not None] for pid, o in simulated.items()}
    pool = fit_pool_prior([(sum(v), len(v)) for v in first.values()])
    for name, prior in (("uniform Beta(1,1)", (1.0, 1.0)), (f"pool Beta({pool[0]:.2f},{pool[1]:.2f})", pool)):
        inside = 0
        for pid, sample in first.items():
            lo, hi = credible_interval(sum(sample), len(sample), prior, level)
            inside += lo <= truth[pid] <= hi
        print(
            f"  SIMULATION: true pass rate inside the 90% credible interval from {split} rollouts, {name}: "
            f"{inside / len(first):.1%}"
        )


def histogram(outcomes: Outcomes) -> str:
    counts = [sum(o is True for o in v) for v in outcomes.values()]
    bins = np.bincount(counts, minlength=K_REF + 1)
    return " ".join(f"{k}:{c}" for k, c in enumerate(bins))


def simulate(outcomes: Outcomes, size: int, seed: int) -> tuple[Outcomes, dict[str, float]]:
    rng = np.random.default_rng(seed)
    rates = [(sum(o is True for o in v), sum(o is not None for o in v)) for v in outcomes.values()]
    simulated: Outcomes = {}
    truth: dict[str, float] = {}
    for i in range(size):
        k, n = rates[rng.integers(len(rates))]
        p = float(rng.beta(k + 0.5, n - k + 0.5))  # the Jeffreys posterior of a recorded problem
        truth[f"sim{i:05d}"] = p
        simulated[f"sim{i:05d}"] = [bool(x) for x in rng.random(K_REF) < p]
    return simulated, truth


def adaptive_calibration(outcomes: Outcomes, config: AdaptiveConfig, level: float = 0.90) -> None:
    """The interval the default adaptive policy reports when it stops, checked on the rollouts it left unused."""
    result = run_sequential(list(outcomes), replay(outcomes), config, bands=BANDS)
    inside = total = 0
    for pid, state in result.states.items():
        unused = [x for x in outcomes[pid][state.drawn :] if x is not None]
        if len(unused) < 4:
            continue
        lo, hi = credible_interval(state.k, state.n, result.prior, level)
        inside += lo - 1e-9 <= sum(unused) / len(unused) <= hi + 1e-9
        total += 1
    if total:
        print(
            f"| adaptive default, at its stop (pool prior) | {inside / total:.1%} ({inside}/{total} problems "
            "with ≥ 4 unused rollouts) | |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recording", default=str(RECORDING))
    parser.add_argument("--simulate", type=int, default=2000, help="simulated problems (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-k", type=int, default=4)
    parser.add_argument("--round-size", type=int, default=2)
    parser.add_argument("--level", type=float, default=0.95)
    args = parser.parse_args()
    outcomes, problems, meta = load_recording(Path(args.recording))
    config = AdaptiveConfig(min_k=args.min_k, max_k=K_REF, round_size=args.round_size, credible_level=args.level)
    reference = {pid: band_of(o) for pid, o in outcomes.items()}
    print("REPLAY of recorded rollouts (not a live run)")
    for key in (b"student", b"student_revision", b"sampling", b"recorded_seconds"):
        print(f"  {key.decode()}: {meta.get(key, b'?').decode()}")
    print(f"  problems: {len(outcomes)}, rollouts recorded: {sum(map(len, outcomes.values()))}")
    families = sorted({str(p["family"]) for p in problems.values()})
    print(f"  families: {', '.join(families)}")
    print(f"  K=16 correct-count histogram (k:problems): {histogram(outcomes)}")
    bands = [b for b in reference.values()]
    print("  reference bands: " + ", ".join(f"{b} {bands.count(b)}" for b in ("too_hard", "learnable", "too_easy")))
    print(f"  adaptive config: {config.model_dump()}; bands {BANDS.model_dump()}")
    predictions = cross_fitted_predictions(outcomes, problems, seed=args.seed)
    print_policies("Policies on the recorded pool (replay)", policies(outcomes, predictions, config), reference)

    print("\nSensitivity (replay): every setting tried is shown, so the default is not cherry-picked silently")
    print("| policy | min_k | level | rollouts | fewer than K=16 | band agreement | learnable recall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    priors = {pid: (p.alpha, p.beta) for pid, p in predictions.items()}  # type: ignore[attr-defined]
    screened = screen(list(predictions.values()), BANDS.too_hard, BANDS.too_easy)  # type: ignore[arg-type]
    for name, kwargs in (
        ("adaptive, pool prior", {}),
        ("predictor prior", {"priors": priors}),
        ("predictor screen + prior", {"priors": priors, "screened": screened}),
    ):
        for min_k in (2, 4):
            for level in (0.8, 0.9, 0.95, 0.975):
                cfg = config.model_copy(update={"min_k": min_k, "credible_level": level})
                result = adaptive("", outcomes, cfg, **kwargs)  # type: ignore[arg-type]
                agree, recall = agreement(result, reference)
                saving = K_REF * len(outcomes) / result.rollouts
                print(
                    f"| {name} | {min_k} | {level} | {result.rollouts} | {saving:.2f}x | {agree:.1%} | {recall:.1%} |"
                )

    calibration(outcomes)
    adaptive_calibration(outcomes, config)

    if args.simulate:
        simulated, truth = simulate(outcomes, args.simulate, args.seed)
        sim_reference = {pid: band_of(o) for pid, o in simulated.items()}
        title = f"SIMULATION: {args.simulate} problems, true pass rates drawn from the recorded problems' posteriors"
        print_policies(title, policies(simulated, None, config), sim_reference)
        true_rate_coverage(simulated, truth)


if __name__ == "__main__":
    main()
