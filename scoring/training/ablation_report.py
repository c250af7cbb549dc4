"""Aggregating curriculum-ablation runs: per-arm accuracy with 95% intervals over seeds, steps and rollouts to reach
the control's final accuracy, learning signal per rollout, wall time, and the accuracy-against-steps plot.

Intervals are Student-t 95% intervals of the mean over seeds (a single seed gives no interval). "Steps to reach"
is per seed: the first evaluated step at which the run's held-out accuracy is at least the reference arm's final
accuracy (its mean over seeds); runs that never get there are counted in `reached`, not averaged in.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

REPORT_COLUMNS = [
    "arm",
    "seeds",
    "acc_start",
    "acc_mid",
    "acc_end",
    "reached",
    "steps_to_reference",
    "step_ratio",
    "rollouts_to_reference",
    "zero_variance_share",
    "seconds",
]


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t 95% interval of the mean; low = high = mean for fewer than two values."""
    if not values:
        return math.nan, math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, mean, mean
    from scipy.stats import t

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(t.ppf(0.975, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean, mean - half, mean + half


def _fmt(interval: tuple[float, float, float], digits: int = 3) -> str:
    mean, low, high = interval
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def accuracy_curves(rows: Sequence[dict[str, Any]]) -> dict[str, dict[int, dict[int, float]]]:
    """arm → seed → step → held-out accuracy, at the evaluated steps."""
    curves: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["heldout_accuracy"] is not None:
            curves[r["arm"]][r["seed"]][r["step"]] = float(r["heldout_accuracy"])
    return curves


def summarize_runs(rows: Sequence[dict[str, Any]], *, reference_arm: str = "random") -> list[dict[str, Any]]:
    """One row per arm (REPORT_COLUMNS), intervals formatted as `mean [low, high]`."""
    curves = accuracy_curves(rows)
    by_run: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_run[(r["arm"], r["seed"])].append(r)
    reference_end = _end_accuracies(curves.get(reference_arm, {}))
    target = sum(reference_end) / len(reference_end) if reference_end else None
    reference_steps = _steps_to(curves.get(reference_arm, {}), target) if target is not None else []
    out = []
    for arm in sorted(curves):
        seeds = curves[arm]
        steps = sorted({s for curve in seeds.values() for s in curve})
        mid = steps[len(steps) // 2] if steps else 0
        reach = _steps_to(seeds, target) if target is not None else []
        reached = [s for s in reach if s is not None]
        rollouts = [
            _rollouts_at(by_run[(arm, seed)], step)
            for seed, step in zip(sorted(seeds), reach, strict=True)
            if step is not None
        ]
        ref_mean = [s for s in reference_steps if s is not None]
        ratio = (
            (sum(reached) / len(reached)) / (sum(ref_mean) / len(ref_mean))
            if reached and ref_mean and sum(ref_mean)
            else None
        )
        runs = [by_run[(arm, seed)] for seed in sorted(seeds)]
        groups = sum(r["groups"] for run in runs for r in run)
        flat = sum(r["zero_variance_groups"] for run in runs for r in run)
        out.append(
            {
                "arm": arm,
                "seeds": len(seeds),
                "acc_start": _fmt(mean_interval([c[min(c)] for c in seeds.values() if c])),
                "acc_mid": _fmt(mean_interval([c[mid] for c in seeds.values() if mid in c])),
                "acc_end": _fmt(mean_interval(_end_accuracies(seeds))),
                "reached": f"{len(reached)}/{len(seeds)}",
                "steps_to_reference": _fmt(mean_interval(reached), 1) if reached else "not reached",
                "step_ratio": f"{ratio:.2f}" if ratio is not None else "–",
                "rollouts_to_reference": _fmt(mean_interval(rollouts), 0) if rollouts else "not reached",
                "zero_variance_share": f"{flat / groups:.2f}" if groups else "–",
                "seconds": _fmt(mean_interval([max(r["seconds"] for r in run) for run in runs]), 0),
            }
        )
    return out


def _end_accuracies(seeds: dict[int, dict[int, float]]) -> list[float]:
    return [curve[max(curve)] for curve in seeds.values() if curve]


def _steps_to(seeds: dict[int, dict[int, float]], target: float | None) -> list[int | None]:
    """Per seed (sorted): the first evaluated step with accuracy ≥ target, or None."""
    out: list[int | None] = []
    for seed in sorted(seeds):
        curve = seeds[seed]
        out.append(next((s for s in sorted(curve) if target is not None and curve[s] >= target - 1e-12), None))
    return out


def _rollouts_at(run: list[dict[str, Any]], step: int) -> float:
    return float(next(r["total_rollouts"] for r in run if r["step"] == step))


def accuracy_plot_svg(rows: Sequence[dict[str, Any]]) -> str:
    """Held-out accuracy against steps: per arm the mean over seeds with its 95% interval shaded (an SVG string)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = accuracy_curves(rows)
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for arm in sorted(curves):
        steps = sorted({s for curve in curves[arm].values() for s in curve})
        stats = [mean_interval([c[s] for c in curves[arm].values() if s in c]) for s in steps]
        line = axes.plot(
            steps, [m for m, _, _ in stats], marker="o", markersize=3, label=f"{arm} ({len(curves[arm])} seeds)"
        )
        axes.fill_between(
            steps, [lo for _, lo, _ in stats], [hi for _, _, hi in stats], alpha=0.15, color=line[0].get_color()
        )
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("held-out accuracy (greedy)")
    axes.set_title("Held-out accuracy by curriculum arm (mean, 95% interval over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})  # no date: same runs, same file
    plt.close(figure)
    return buffer.getvalue()
