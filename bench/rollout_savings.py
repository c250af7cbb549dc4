"""Rollouts spent vs band agreement with a fixed K=16 reference, tuned on one half of the pool, reported on the other.

    python bench/rollout_savings.py [--recording bench/recordings/rollout_savings_k16.parquet] [--seeds 10]
                                    [--min-agreement 0.95] [--min-recall 0.85] [--simulate 2000]
                                    [--out bench/results/rollout_savings.md]

This is a REPLAY. `bench/record_rollouts.py` drew K=16 rollouts per problem from the real 0.5B student once,
through the pipeline and its cache (config: `bench/rollout_savings.yaml`). Each policy here is run by the same
code the pipeline uses (`scoring.grading.adaptive.run_sequential`), fed the recorded outcomes in their sampled order
(sample index 0, 1, 2, …), so a policy that stops after n rollouts sees exactly the first n samples the
pipeline would have drawn. The reference band of a problem is the band of its K=16 pass rate.

Honest figures (tuning and reporting never see the same problem):

* For each split seed the problems are split in two halves, by problem, stratified by (K=16 band, family) so
  both halves hold about the same number of learnable problems. Each half is the TUNING half once and the
  REPORT half once (2-fold cross-validation), so every problem is reported exactly once per seed, by settings
  chosen without it.
* On the tuning half every setting of a policy is run and the winner is the setting with the fewest rollouts
  among those with band agreement ≥ `--min-agreement` and learnable recall ≥ `--min-recall` (ties: higher
  agreement, then higher recall); if none qualifies, the one with the highest recall, then agreement. Only
  the winner is run on the report half.
* Figures are the report halves' (summed over the two halves of a seed), shown as mean [min–max] over seeds.
* The predictor is trained only on the tuning half's K=16 grades (the "earlier graded pool"). For tuning, its
  predictions on the tuning half are cross-fitted inside the tuning half. `random` folds hold out random
  problems; `family` folds hold out a whole family, so every prediction is for a family the predictor never
  saw. The K=16 rollouts that trained it are charged in the "incl. predictor training" column.

`--simulate N` adds a clearly labelled SIMULATION: N problems whose true pass rates are drawn from the
recorded problems' posteriors, with fresh Bernoulli outcomes (nothing is tuned on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# Thousands of tiny scipy/sklearn fits: BLAS threads only fight each other (and other jobs) for the cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from scoring.grading.adaptive import (  # noqa: E402
    AdaptiveConfig,
    BandsConfig,
    credible_interval,
    fit_pool_prior,
    run_sequential,
)
from scoring.grading.estimators import fresh_group_interval  # noqa: E402
from scoring.grading.predictor import PassRatePredictor, Prediction, screen  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORDING = HERE / "recordings" / "rollout_savings_k16.parquet"
RESULTS = HERE / "results" / "rollout_savings.md"
K_REF = 16
BANDS = BandsConfig()
SHIPPED = AdaptiveConfig(max_k=K_REF)  # the config defaults: min_k 4, round 2, level 0.95, predictive, pool prior
CALIBRATION_TARGET = 0.88  # a 90% interval should hold at least this share of fresh pass rates
PREDICTOR_FOLDS = 5

Outcomes = dict[str, list[bool | None]]
Problems = dict[str, dict[str, object]]
Predictions = dict[str, Prediction]


@dataclass(frozen=True)
class PolicyResult:
    name: str
    rollouts: int
    bands: dict[str, str | None]
    screened: frozenset[str] = frozenset()  # problems the predictor's screen banded without rollouts


@dataclass(frozen=True)
class Score:
    """A policy's result on one set of problems, against the K=16 reference."""

    problems: int
    rollouts: int
    agree: int
    learnable: int
    recalled: int
    screened: int = 0
    screened_learnable: int = 0  # screened problems whose K=16 band is learnable (the screen's misses)

    @property
    def agreement(self) -> float:
        return self.agree / self.problems if self.problems else 1.0

    @property
    def recall(self) -> float:
        return self.recalled / self.learnable if self.learnable else 1.0

    def __add__(self, other: Score) -> Score:
        return Score(
            self.problems + other.problems,
            self.rollouts + other.rollouts,
            self.agree + other.agree,
            self.learnable + other.learnable,
            self.recalled + other.recalled,
            self.screened + other.screened,
            self.screened_learnable + other.screened_learnable,
        )


@dataclass(frozen=True)
class Setting:
    label: str
    run: Callable[[Outcomes, Sequence[str], Predictions | None], PolicyResult]


@dataclass(frozen=True)
class Policy:
    """A policy with the settings tuning chooses from (one setting: nothing to tune)."""

    name: str
    settings: list[Setting]
    predictor: str | None = None  # None, "random" or "family": which predictions the policy uses
    note: str = ""


@dataclass
class Tally:
    """Per policy, across seeds: the report-half score of each seed and the settings tuning chose."""

    per_seed: list[Score] = field(default_factory=list)
    chosen: Counter[str] = field(default_factory=Counter)
    unmet: int = 0  # tuning halves where no setting met the criterion
    training: list[int] = field(default_factory=list)  # K=16 rollouts that trained the predictor, per seed


# ------------------------------------------------------------------------------------------------ recording


def load_recording(path: Path) -> tuple[Outcomes, Problems, dict[bytes, bytes]]:
    table = pq.read_table(path)
    rows = sorted(table.to_pylist(), key=lambda r: (r["problem_id"], r["sample_index"]))
    outcomes: Outcomes = {}
    problems: Problems = {}
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


def counts(sample: Sequence[bool | None]) -> tuple[int, int]:
    return sum(o is True for o in sample), sum(o is not None for o in sample)


def replay(outcomes: Outcomes) -> Callable[[Mapping[str, tuple[int, int]]], dict[str, list[bool | None]]]:
    def draw(plan: Mapping[str, tuple[int, int]]) -> dict[str, list[bool | None]]:
        return {pid: outcomes[pid][first : first + count] for pid, (first, count) in plan.items()}

    return draw


# ------------------------------------------------------------------------------------------------- policies


def fixed(outcomes: Outcomes, ids: Sequence[str], k: int) -> PolicyResult:
    return PolicyResult(f"fixed K={k}", k * len(ids), {pid: band_of(outcomes[pid][:k]) for pid in ids})


def nothing(outcomes: Outcomes, ids: Sequence[str]) -> PolicyResult:
    """The trivial baseline: no rollouts, every problem called too_hard."""
    return PolicyResult("all too_hard", 0, dict.fromkeys(ids, "too_hard"))


def adaptive(
    outcomes: Outcomes,
    ids: Sequence[str],
    config: AdaptiveConfig,
    priors: Mapping[str, tuple[float, float]] | None = None,
    screened: Mapping[str, str] | None = None,
    name: str = "",
) -> PolicyResult:
    screened = screened or {}
    open_ids = [pid for pid in ids if pid not in screened]
    result = run_sequential(open_ids, replay(outcomes), config, bands=BANDS, priors=priors)
    bands: dict[str, str | None] = {pid: s.band for pid, s in result.states.items()}
    bands |= dict(screened)
    return PolicyResult(name, result.rollouts_drawn, bands, frozenset(screened))


def predictor_adaptive(
    outcomes: Outcomes, ids: Sequence[str], predictions: Predictions | None, config: AdaptiveConfig, use_screen: bool
) -> PolicyResult:
    assert predictions is not None
    priors = {pid: (predictions[pid].alpha, predictions[pid].beta) for pid in ids}
    screened = screen([predictions[pid] for pid in ids], BANDS.too_hard, BANDS.too_easy) if use_screen else None
    return adaptive(outcomes, ids, config, priors=priors, screened=screened)


def adaptive_label(config: AdaptiveConfig) -> str:
    rule = "predictive" if config.stop_rule == "predictive" else "CI in band"
    return f"min_k {config.min_k}, level {config.credible_level}, {rule}"


def adaptive_grid() -> list[AdaptiveConfig]:
    return [
        SHIPPED.model_copy(update={"min_k": min_k, "credible_level": level, "stop_rule": rule})
        for rule in ("predictive", "credible_interval")
        for min_k in (2, 4, 6)
        for level in (0.8, 0.9, 0.95, 0.975)
    ]


def build_policies() -> list[Policy]:
    grid = adaptive_grid()

    def pool_setting(config: AdaptiveConfig) -> Setting:
        return Setting(adaptive_label(config), lambda o, ids, _p: adaptive(o, ids, config))

    def predictor_setting(config: AdaptiveConfig, use_screen: bool) -> Setting:
        return Setting(adaptive_label(config), lambda o, ids, p: predictor_adaptive(o, ids, p, config, use_screen))

    def fixed_setting(k: int) -> Setting:
        return Setting(f"K={k}", lambda o, ids, _p: fixed(o, ids, k))

    policies = [
        Policy("trivial: no rollouts, all too_hard", [Setting("-", lambda o, ids, _p: nothing(o, ids))]),
        Policy("fixed K=16 (the reference)", [fixed_setting(K_REF)]),
        Policy("fixed K=4 (not tuned)", [fixed_setting(4)]),
        Policy("fixed K, tuned", [fixed_setting(k) for k in range(1, K_REF + 1)]),
        Policy(
            "adaptive, pool prior, shipped defaults (not tuned here)",
            [pool_setting(SHIPPED)],
            note="the config defaults; they were chosen earlier on the whole recording",
        ),
        Policy("adaptive, pool prior, tuned", [pool_setting(c) for c in grid]),
    ]
    for folds in ("random", "family"):
        policies.append(
            Policy(
                f"predictor prior + adaptive, tuned ({folds} folds)",
                [predictor_setting(c, False) for c in grid],
                predictor=folds,
            )
        )
        policies.append(
            Policy(
                f"predictor screen + prior + adaptive, tuned ({folds} folds)",
                [predictor_setting(c, True) for c in grid],
                predictor=folds,
            )
        )
    return policies


# ------------------------------------------------------------------------------------------------- scoring


def score(result: PolicyResult, ids: Sequence[str], reference: Mapping[str, str | None]) -> Score:
    learnable = [pid for pid in ids if reference[pid] == "learnable"]
    return Score(
        problems=len(ids),
        rollouts=result.rollouts,
        agree=sum(result.bands.get(pid) == reference[pid] for pid in ids),
        learnable=len(learnable),
        recalled=sum(result.bands.get(pid) == "learnable" for pid in learnable),
        screened=len(result.screened),
        screened_learnable=sum(reference[pid] == "learnable" for pid in result.screened),
    )


def select(scores: Sequence[Score], min_agreement: float, min_recall: float) -> tuple[int, bool]:
    """Index of the winning setting on the tuning half, and whether it met the criterion."""
    order = range(len(scores))
    ok = [i for i in order if scores[i].agreement >= min_agreement and scores[i].recall >= min_recall]
    if ok:
        return min(ok, key=lambda i: (scores[i].rollouts, -scores[i].agreement, -scores[i].recall, i)), True
    return min(order, key=lambda i: (-scores[i].recall, -scores[i].agreement, scores[i].rollouts, i)), False


def split_halves(
    ids: Sequence[str], reference: Mapping[str, str | None], problems: Problems, seed: int
) -> tuple[list[str], list[str]]:
    """Two halves of the problems, stratified by (K=16 band, family): problems sorted by stratum, shuffled
    inside it, then dealt alternately, so every stratum and the whole split out within one problem."""
    ordered = sorted(ids)
    draw = dict(zip(ordered, np.random.default_rng(seed).random(len(ordered)), strict=True))
    dealt = sorted(ordered, key=lambda pid: (str(reference[pid]), str(problems[pid]["family"]), draw[pid]))
    return sorted(dealt[0::2]), sorted(dealt[1::2])


# ------------------------------------------------------------------------------------------------ predictor


def fit_predict(
    outcomes: Outcomes, problems: Problems, train: Sequence[str], target: Sequence[str], seed: int
) -> Predictions:
    model = PassRatePredictor(seed=seed).fit([problems[p] for p in train], [counts(outcomes[p]) for p in train])
    return {pred.problem_id: pred for pred in model.predict([problems[p] for p in target])}


def predictions(
    outcomes: Outcomes, problems: Problems, train_pool: Sequence[str], target: Sequence[str], folds: str, seed: int
) -> Predictions:
    """Predictions for `target` from models trained on `train_pool`'s K=16 grades, never on the predicted
    problem: `random` holds out random folds of `target` (or all of it, when it is not part of the training
    pool); `family` holds out every problem of the predicted problem's family."""
    target = sorted(target)
    pool = set(train_pool)
    if folds == "family":
        groups: dict[str, list[str]] = {}
        for pid in target:
            groups.setdefault(str(problems[pid]["family"]), []).append(pid)
        held_out = [(held, lambda p, f=fam: problems[p]["family"] != f) for fam, held in groups.items()]
    elif pool.isdisjoint(target):
        held_out = [(target, lambda p: True)]
    else:
        order = np.random.default_rng(seed).permutation(len(target))
        held_out = [([target[i] for i in order[f::PREDICTOR_FOLDS]], lambda p: True) for f in range(PREDICTOR_FOLDS)]
    out: Predictions = {}
    for held, keep in held_out:
        hidden = set(held)
        train = [p for p in sorted(pool) if p not in hidden and keep(p)]
        out |= fit_predict(outcomes, problems, train, held, seed)
    return out


# ------------------------------------------------------------------------------------------------ the run


def evaluate(
    outcomes: Outcomes,
    problems: Problems,
    reference: Mapping[str, str | None],
    policies: Sequence[Policy],
    seeds: Sequence[int],
    min_agreement: float,
    min_recall: float,
    log: Callable[[str], None] = lambda _line: None,
) -> dict[str, Tally]:
    """2-fold cross-validation per seed: tune on one half, report on the other, then swap."""
    tallies = {policy.name: Tally() for policy in policies}
    ids = sorted(outcomes)
    for seed in seeds:
        first, second = split_halves(ids, reference, problems, seed)
        totals: dict[str, Score] = {}
        training: dict[str, int] = {}
        for tune, report in ((first, second), (second, first)):
            needed = {p.predictor for p in policies if p.predictor}
            tune_preds = {f: predictions(outcomes, problems, tune, tune, f, seed) for f in needed}
            report_preds = {f: predictions(outcomes, problems, tune, report, f, seed) for f in needed}
            for policy in policies:
                chosen, met = 0, True
                if len(policy.settings) > 1:
                    preds = tune_preds.get(policy.predictor) if policy.predictor else None
                    tuned = [score(s.run(outcomes, tune, preds), tune, reference) for s in policy.settings]
                    chosen, met = select(tuned, min_agreement, min_recall)
                setting = policy.settings[chosen]
                tally = tallies[policy.name]
                tally.chosen[setting.label] += 1
                tally.unmet += not met
                preds = report_preds.get(policy.predictor) if policy.predictor else None
                result = setting.run(outcomes, report, preds)
                got = score(result, report, reference)
                if policy.predictor:
                    training[policy.name] = training.get(policy.name, 0) + sum(len(outcomes[p]) for p in tune)
                totals[policy.name] = totals[policy.name] + got if policy.name in totals else got
        for policy in policies:
            tallies[policy.name].per_seed.append(totals[policy.name])
            if policy.predictor:
                tallies[policy.name].training.append(training[policy.name])
        log(f"  seed {seed} done")
    return tallies


def spread(values: Sequence[float], fmt: str) -> str:
    if len(values) == 1 or min(values) == max(values):
        return format(values[0], fmt)
    return f"{format(statistics.fmean(values), fmt)} [{format(min(values), fmt)}–{format(max(values), fmt)}]"


def fewer(rollouts: float, problems: int) -> str:
    return f"{K_REF * problems / rollouts:.2f}×" if rollouts else "—"


def main_table(policies: Sequence[Policy], tallies: Mapping[str, Tally], out: Callable[[str], None]) -> None:
    out(
        "| policy | setting chosen on the tuning half (halves choosing it) | rollouts | fewer than K=16 "
        "| band agreement | learnable recall | rollouts incl. predictor training |"
    )
    out("|---|---|---:|---:|---:|---:|---:|")
    for policy in policies:
        tally = tallies[policy.name]
        scores = tally.per_seed
        problems = scores[0].problems
        rollouts = [s.rollouts for s in scores]
        if len(policy.settings) > 1:
            halves = sum(tally.chosen.values())
            chosen = "; ".join(f"{label} ({n}/{halves})" for label, n in tally.chosen.most_common(3))
            if len(tally.chosen) > 3:
                chosen += f"; {len(tally.chosen) - 3} other"
            if tally.unmet:
                chosen += f"; criterion met on no setting in {tally.unmet} of {halves} tuning halves"
        else:
            chosen = policy.settings[0].label
        with_training = "—"
        if policy.predictor:
            total = [s.rollouts + t for s, t in zip(scores, tally.training, strict=True)]
            with_training = f"{spread(total, '.0f')} ({fewer(statistics.fmean(total), problems)})"
        out(
            f"| {policy.name} | {chosen} | {spread(rollouts, '.0f')} | {fewer(statistics.fmean(rollouts), problems)} "
            f"| {spread([s.agreement for s in scores], '.1%')} | {spread([s.recall for s in scores], '.1%')} "
            f"| {with_training} |"
        )


# ---------------------------------------------------------------------------------------------- calibration


def calibration(outcomes: Outcomes, out: Callable[[str], None], split: int = 8, level: float = 0.90) -> None:
    """Estimate from the first `split` rollouts, check the reported intervals against the other ones."""
    first = {pid: [x for x in o[:split] if x is not None] for pid, o in outcomes.items()}
    fresh = {pid: [x for x in o[split:] if x is not None] for pid, o in outcomes.items()}
    pool = fit_pool_prior([(sum(v), len(v)) for v in first.values()])
    out(
        f"Estimate from rollouts 0–{split - 1}, check on rollouts {split}–{K_REF - 1} of the same problem (fresh). "
        f"Nothing here is tuned. Target: a {level:.0%} interval holds ≥ {CALIBRATION_TARGET:.0%}."
    )
    out("")
    out(
        "| prior | fresh pass rate inside the 90% credible interval (post_lo..post_hi) | of which k=0 in the first "
        f"{split} | k>0 in the first {split} | inside the 90% fresh-group interval (fresh_lo..fresh_hi) |"
    )
    out("|---|---:|---:|---:|---:|")
    default = f"pool Beta({pool[0]:.2f},{pool[1]:.2f}) — the default (`prior: pool`)"
    rows = ((default, pool), ("uniform Beta(1,1)", (1.0, 1.0)))
    for name, prior in rows:
        inside = {True: [0, 0], False: [0, 0]}  # k == 0 → [inside, total]
        inside_pred = total = 0
        for pid in outcomes:
            k, n, m = sum(first[pid]), len(first[pid]), len(fresh[pid])
            if n == 0 or m == 0:
                continue
            lo, hi = credible_interval(k, n, prior, level)
            rate = sum(fresh[pid]) / m
            cell = inside[k == 0]
            cell[0] += lo - 1e-9 <= rate <= hi + 1e-9
            cell[1] += 1
            low, high = fresh_group_interval(k, n, prior, m, level)
            inside_pred += low - 1e-9 <= rate <= high + 1e-9
            total += 1
        hit = inside[True][0] + inside[False][0]
        verdict = "below target" if hit / total < CALIBRATION_TARGET else "meets target"
        out(
            f"| {name} | {hit / total:.1%} ({hit}/{total}, {verdict}) | {_share(*inside[True])} "
            f"| {_share(*inside[False])} | {inside_pred / total:.1%} ({inside_pred}/{total}) |"
        )


def _share(hit: int, total: int) -> str:
    return f"{hit / total:.1%} ({hit}/{total})" if total else "—"


def adaptive_calibration(outcomes: Outcomes, config: AdaptiveConfig, out: Callable[[str], None]) -> None:
    """The interval the default adaptive policy reports when it stops, checked on the rollouts it left unused."""
    result = run_sequential(list(outcomes), replay(outcomes), config, bands=BANDS)
    inside = total = 0
    for pid, state in result.states.items():
        unused = [x for x in outcomes[pid][state.drawn :] if x is not None]
        if len(unused) < 4:
            continue
        lo, hi = credible_interval(state.k, state.n, result.prior, 0.90)
        inside += lo - 1e-9 <= sum(unused) / len(unused) <= hi + 1e-9
        total += 1
    if total:
        out(
            f"The shipped adaptive default at its stop (pool prior Beta({result.prior[0]:.2f},{result.prior[1]:.2f})): "
            f"its 90% credible interval holds the pass rate of the rollouts it left unused for {inside / total:.1%} "
            f"({inside}/{total} problems with ≥ 4 unused rollouts)."
        )


def true_rate_coverage(
    simulated: Outcomes, truth: Mapping[str, float], out: Callable[[str], None], split: int = 8, level: float = 0.9
) -> None:
    """Where the truth is known: the credible interval against the true rate, and against a fresh group's rate
    (the same test as the recording's), to show how much of a miss the fresh group's own noise causes."""
    first = {pid: [x for x in o[:split] if x is not None] for pid, o in simulated.items()}
    fresh = {pid: [x for x in o[split:] if x is not None] for pid, o in simulated.items()}
    pool = fit_pool_prior([(sum(v), len(v)) for v in first.values()])
    for name, prior in ((f"pool Beta({pool[0]:.2f},{pool[1]:.2f}) (default)", pool), ("uniform Beta(1,1)", (1.0, 1.0))):
        true_inside = fresh_inside = 0
        for pid, sample in first.items():
            lo, hi = credible_interval(sum(sample), len(sample), prior, level)
            true_inside += lo <= truth[pid] <= hi
            fresh_inside += lo - 1e-9 <= sum(fresh[pid]) / len(fresh[pid]) <= hi + 1e-9
        out(
            f"- SIMULATION, {name}: the 90% credible interval from {split} rollouts holds the true pass rate for "
            f"{true_inside / len(first):.1%} of problems and the fresh {K_REF - split}-rollout pass rate for "
            f"{fresh_inside / len(first):.1%}"
        )


# ----------------------------------------------------------------------------------------------- simulation


def histogram(outcomes: Outcomes) -> str:
    correct = [sum(o is True for o in v) for v in outcomes.values()]
    bins = np.bincount(correct, minlength=K_REF + 1)
    return " ".join(f"{k}:{c}" for k, c in enumerate(bins))


def simulate(outcomes: Outcomes, size: int, seed: int) -> tuple[Outcomes, dict[str, float]]:
    rng = np.random.default_rng(seed)
    rates = [counts(v) for v in outcomes.values()]
    simulated: Outcomes = {}
    truth: dict[str, float] = {}
    for i in range(size):
        k, n = rates[rng.integers(len(rates))]
        p = float(rng.beta(k + 0.5, n - k + 0.5))  # the Jeffreys posterior of a recorded problem
        truth[f"sim{i:05d}"] = p
        simulated[f"sim{i:05d}"] = [bool(x) for x in rng.random(K_REF) < p]
    return simulated, truth


def simulation_rows(
    simulated: Outcomes, configs: Sequence[tuple[str, AdaptiveConfig]], out: Callable[[str], None]
) -> None:
    ids = sorted(simulated)
    reference = {pid: band_of(o) for pid, o in simulated.items()}
    results = [nothing(simulated, ids), fixed(simulated, ids, 4)]
    results += [adaptive(simulated, ids, config, name=name) for name, config in configs]
    out("| SIMULATION (not a replay) | rollouts per problem | fewer than K=16 | band agreement | learnable recall |")
    out("|---|---:|---:|---:|---:|")
    for result in results:
        got = score(result, ids, reference)
        out(
            f"| SIMULATION: {result.name} | {got.rollouts / got.problems:.2f} | {fewer(got.rollouts, got.problems)} "
            f"| {got.agreement:.1%} | {got.recall:.1%} |"
        )


# ------------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recording", default=str(RECORDING))
    parser.add_argument("--seeds", type=int, default=10, help="split seeds (each is a 2-fold tune/report swap)")
    parser.add_argument("--min-agreement", type=float, default=0.95, help="tuning criterion: band agreement")
    parser.add_argument("--min-recall", type=float, default=0.85, help="tuning criterion: learnable recall")
    parser.add_argument("--simulate", type=int, default=2000, help="simulated problems (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the report ('' for nowhere)")
    args = parser.parse_args()

    lines: list[str] = []

    def out(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    outcomes, problems, meta = load_recording(Path(args.recording))
    reference = {pid: band_of(o) for pid, o in outcomes.items()}
    bands = list(reference.values())
    n = len(outcomes)
    command = "python bench/rollout_savings.py" + "".join(f" {a}" for a in sys.argv[1:])
    out("# Rollout savings: REPLAY of recorded rollouts (not a live run)")
    out("")
    out(f"Written by `{command}`.")
    out("")
    for key in (b"student", b"student_revision", b"sampling", b"recorded_seconds"):
        out(f"- {key.decode()}: {meta.get(key, b'?').decode()}")
    out(f"- problems: {n}, rollouts recorded: {sum(map(len, outcomes.values()))}")
    out(f"- families: {', '.join(sorted({str(p['family']) for p in problems.values()}))}")
    out(f"- K=16 correct-count histogram (k:problems): {histogram(outcomes)}")
    out("- K=16 reference bands: " + ", ".join(f"{b} {bands.count(b)}" for b in ("too_hard", "learnable", "too_easy")))
    out(f"- bands: {BANDS.model_dump()}; adaptive max_k {K_REF}, round_size {SHIPPED.round_size}")

    policies = build_policies()
    seeds = list(range(args.seeds))
    tallies = evaluate(outcomes, problems, reference, policies, seeds, args.min_agreement, args.min_recall, log=print)

    out("")
    out("## Policies, reported on held-out halves")
    out("")
    out(
        f"What was tuned on what: for each of {len(seeds)} split seeds the {n} problems are split in two halves "
        "by problem (stratified by K=16 band and family); each policy's setting is chosen on one half — the fewest "
        f"rollouts with band agreement ≥ {args.min_agreement:.0%} and learnable recall ≥ {args.min_recall:.0%} "
        "there (if none qualifies, the highest recall, then agreement) — and run on the other half, then the "
        "halves swap. Each figure is the sum over the two report "
        f"halves, i.e. all {n} problems, each graded by a setting chosen without it: mean [min–max] over the seeds. "
        "Adaptive settings tried: min_k 2/4/6 × level 0.8/0.9/0.95/0.975 × stop rule predictive/CI in band "
        "(round_size 2, max_k 16); fixed K: 1–16."
    )
    out("")
    out(
        "The predictor (logistic regression, `scoring.grading.predictor`) is trained only on the tuning half's "
        "K=16 grades and predicts the report half; for tuning, its predictions on the tuning half are "
        "cross-fitted inside it. "
        "`random folds`: random problems held out. `family folds`: each problem is predicted by a model that "
        "never saw its family. 'rollouts' is the marginal cost; 'incl. predictor training' adds the K=16 "
        f"rollouts of the tuning half that trained it ({K_REF} × {n // 2} per report half, {K_REF} per predicted "
        "problem) — the honest cost unless those grades were bought anyway (an earlier pool graded for its own "
        "use), and repaid only when the predictor serves a pool much larger than the one it was trained on."
    )
    out("")
    main_table(policies, tallies, out)
    out("")
    out(
        f"Learnable recall: of the {bands.count('learnable')} problems whose K=16 band is learnable, the share the "
        "policy also calls learnable. The trivial row shows why agreement alone misleads: calling every problem "
        f"too_hard with no rollouts agrees on {bands.count('too_hard') / n:.1%} and finds none of them."
    )
    for policy in policies:
        tally = tallies[policy.name]
        if policy.predictor and "screen" in policy.name:
            screened = [s.screened for s in tally.per_seed]
            missed = [s.screened_learnable for s in tally.per_seed]
            out(
                f"- {policy.name}: screened without rollouts {spread(screened, '.0f')} of {n} problems, "
                f"of which K=16-learnable {spread(missed, '.1f')}"
            )
        if policy.note:
            out(f"- {policy.name}: {policy.note}")

    out("")
    out("## Calibration")
    out("")
    calibration(outcomes, out)
    out("")
    adaptive_calibration(outcomes, SHIPPED, out)
    out("")
    out(
        "The credible interval is for the true pass rate; a fresh group of 8 adds its own sampling noise (a "
        "problem with p = 0.1 shows 0 of 8 43% of the time, outside any interval that excludes 0), so this test "
        "is harsher than the interval's 90% promise. The SIMULATION below, where the true rate is known, "
        "separates the two; the interval meant for a fresh group's pass rate is fresh_lo..fresh_hi."
    )

    if args.simulate:
        simulated, truth = simulate(outcomes, args.simulate, args.seed)
        label = tallies["adaptive, pool prior, tuned"].chosen.most_common(1)[0][0]
        chosen = next(c for c in adaptive_grid() if adaptive_label(c) == label)
        out("")
        out(f"## SIMULATION ({args.simulate} problems; not the recording)")
        out("")
        out(
            "True pass rates drawn from the recorded problems' Jeffreys posteriors, fresh Bernoulli outcomes; "
            "its K=16 bands are the reference. Nothing is tuned on it."
        )
        out("")
        simulation_rows(
            simulated,
            [
                (f"adaptive, pool prior, shipped defaults ({adaptive_label(SHIPPED)})", SHIPPED),
                (f"adaptive, pool prior, most-chosen tuned setting ({label})", chosen),
            ],
            out,
        )
        out("")
        true_rate_coverage(simulated, truth, out)

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
