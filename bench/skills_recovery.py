"""Planted-structure check for the skills layer (issue 8; methods §7 STAT): does the teacher recover what we know?

    nice python bench/skills_recovery.py [--model qwen2.5-coder-0.5b-instruct-q4_k_m] [--teacher MODEL]
        [--data-root /tmp/gradus-skills] [--families arithmetic linear_equations modular_arithmetic knights_knaves
        sequences] [--levels 1 3] [--per-level 2] [--k 4] [--prompt answer_only_v1] [--max-tokens 32]
        [--failures 24] [--threads N] [--draws 2000] [--report bench/results/skills_recovery.md]

A mix of procedural families is the planted structure: every problem's family tags are its true skills, and a
family's pass rate is how weak the student is at the family's main skill. The pipeline's own stages run on it with
the real embedded models (student = `--model`; teacher = `--teacher`, by default the student): rollouts →
difficulty → vocabulary (the families' skills; no proposals, since every problem has known skills) → teacher labels
on every problem (`label_known`) → failure attributions → profile. It prints

(a) agreement: the share of problems whose teacher labels include the family's main skill (also: the teacher's
    first label is it; any overlap with the family's tags), overall and per family;
(b) per family: pass rate, failed rollouts, failures attributed, how often the attribution names the family's main
    skill, and the main skill's profile `fail_share`; then the Spearman rank correlation between "weakest by
    profile" (fail_share, high = weak) and "weakest by family pass rate" (1 − pass rate), over the families, and
    the same over every skill tag of the families (a skill's family weakness against its fail_share);
(c) a chance baseline for both rank correlations: the same profile (`scoring.grading.skills.profile_rows`, so the same
    weighting by each problem's failed rollouts) with every attribution the teacher made replaced by as many skills
    drawn at random among the skills it was offered for that failure (`synthesis.skills.offered_skills`; with
    `attribute_from: problem` the problem's own skills), `--draws` seeded draws: the median and 95th percentile of
    the chance rho, measured − median, and the share of draws with rho ≥ the measured one (an empirical p-value).
    A failure whose teacher named every offered skill has nothing left to chance.

The report starts with the command line it was run with and is also written to `--report`.

The student's rollouts use `answer_only_v1` with a short budget by default so the whole run fits a CPU in minutes;
that suits the 0.5B student. The 1.5B Coder model ignores "answer only" and starts working, so give it
`--prompt solve_boxed_v1 --max-tokens 256` (at 160 tokens most of its answers are cut off before the box).
Everything goes through the persistent cache under `--data-root`, so a rerun with the same arguments prints the
same numbers for free.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from engines.config import EngineConfig  # noqa: E402
from engines.models import EMBEDDED_MODELS, ensure_model  # noqa: E402
from scoring.config import ProjectConfig, StudentConfig  # noqa: E402
from scoring.grading.rollouts import RolloutConfig  # noqa: E402
from scoring.grading.skills import (  # noqa: E402
    Attribution,
    SkillsConfig,
    effective_labels,
    label_agreement,
    labels_by_labeler,
    profile_rows,
)
from scoring.stages.difficulty import build_difficulty, current_grades  # noqa: E402
from scoring.stages.problems import build_problems  # noqa: E402
from scoring.stages.roles import EngineRoles  # noqa: E402
from scoring.stages.rollouts import build_rollouts  # noqa: E402
from scoring.stages.skills import (  # noqa: E402
    build_problem_skills,
    build_skill_profile,
    build_skill_vocabulary,
    read_vocabulary,
)
from scoring.storage import DataRoot  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402
from synthesis.skill_vocabulary import Vocabulary  # noqa: E402
from synthesis.skills import offered_skills  # noqa: E402
from synthesis.sources import ProceduralSource, SourcesConfig  # noqa: E402

DEFAULT_FAMILIES = ["arithmetic", "linear_equations", "modular_arithmetic", "knights_knaves", "sequences"]
REPORT = Path(__file__).resolve().parent / "results" / "skills_recovery.md"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct-q4_k_m", choices=sorted(EMBEDDED_MODELS))
    parser.add_argument(
        "--teacher", default=None, choices=sorted(EMBEDDED_MODELS), help="teacher model (default: the student's)"
    )
    parser.add_argument("--data-root", default="/tmp/gradus-skills")
    parser.add_argument("--families", nargs="+", default=DEFAULT_FAMILIES)
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 3])
    parser.add_argument("--per-level", type=int, default=2)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--prompt", default="answer_only_v1", choices=["answer_only_v1", "solve_boxed_v1"])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--failures", type=int, default=24, help="failed rollouts the teacher attributes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    parser.add_argument("--draws", type=int, default=2000, help="random attribution draws for the chance baseline")
    parser.add_argument("--report", type=Path, default=REPORT, help="where the markdown report is also written")
    return parser.parse_args()


def teacher_model(args: argparse.Namespace) -> str:
    return args.teacher or args.model


def project(args: argparse.Namespace) -> ProjectConfig:
    engine = EngineConfig(model=args.model, n_ctx=2048, n_threads=args.threads)
    teacher = None  # None: the student's engine also teaches
    if teacher_model(args) != args.model:
        teacher = EngineConfig(model=teacher_model(args), n_ctx=2048, n_threads=args.threads)
    return ProjectConfig(
        data_root=args.data_root,
        student=StudentConfig(id=f"bench-{args.model.split('-instruct')[0]}", engine=engine),
        teacher=teacher,
        sources=SourcesConfig(
            procedural=[
                ProceduralSource(family=f, levels=args.levels, per_level=args.per_level, seed=args.seed)
                for f in args.families
            ]
        ),
        rollouts=RolloutConfig(k=args.k, max_tokens=args.max_tokens, prompt=args.prompt, seed=args.seed),
        skills=SkillsConfig(
            enabled=True, propose_from=0, label_known=True, failures_attributed=args.failures, seed=args.seed
        ),
    )


def table(rows: list[list[object]], header: list[str]) -> str:
    def cell(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def main() -> None:
    args = parse_args()
    config = project(args)
    root = DataRoot(args.data_root)
    for model in {args.model, teacher_model(args)}:
        ensure_model(EMBEDDED_MODELS[model], root.models_dir)
    started = time.perf_counter()
    with EngineRoles(config, root) as roles:
        build_problems(config, root)
        build_rollouts(config, root, roles.student)
        build_difficulty(config, root)
        build_skill_vocabulary(config, root, roles)
        labels = build_problem_skills(config, root, roles)
        profile = build_skill_profile(config, root, roles)
        stats = roles.student.stats.as_dict()
        if teacher_model(args) != args.model:  # two engines: add the teacher's calls
            teacher_stats = roles.teacher.stats.as_dict()
            stats = {key: stats[key] + teacher_stats[key] for key in ("model_calls", "cache_hits")}
    seconds = time.perf_counter() - started
    text = report(config, root, args, labels.table, profile.counts, stats, seconds)
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(f"(written to {args.report})")


# -- the rank correlations and their chance baseline ---------------------------------------------------------------


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(rho, p); both nan when one side is constant (no ranking to compare)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's ConstantInputWarning: a constant side gives nan, counted apart
        result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class Planted:
    """The planted structure the profile is scored against: each family's weakness (1 − pass rate), its main
    skill, and for every skill tag the families that carry it."""

    weakness: dict[str, float]  # family → 1 − pass rate, in report order
    main_of: dict[str, str]
    carriers: dict[str, list[str]]  # skill tag → families carrying it

    @classmethod
    def of(cls, families: Sequence[str], weakness: Sequence[float]) -> Planted:
        carriers: dict[str, list[str]] = {}
        for family in families:
            for skill in FAMILIES.get(family).skill_ids():
                carriers.setdefault(skill, []).append(family)
        main_of = {f: FAMILIES.get(f).skill_ids()[0] for f in families}
        return cls(dict(zip(families, weakness, strict=True)), main_of, carriers)

    def per_family(self, shares: Mapping[str, float]) -> tuple[float, float]:
        """Spearman (rho, p) between each family's weakness and its main skill's fail_share."""
        return spearman(list(self.weakness.values()), [shares.get(self.main_of[f], 0.0) for f in self.weakness])

    def per_skill(self, shares: Mapping[str, float]) -> tuple[float, float]:
        """Spearman (rho, p) between each skill tag's fail_share and the (mean) weakness of its families."""
        weakness = [sum(self.weakness[f] for f in fs) / len(fs) for fs in self.carriers.values()]
        return spearman(weakness, [shares.get(skill, 0.0) for skill in self.carriers])


def stored_attributions(rows: Sequence[Mapping[str, object]]) -> list[Attribution]:
    """`skill_attributions` rows (one per named skill, in the teacher's order) → one `Attribution` per failure.
    Rejected answers have no rows; the profile leaves them out anyway (only accepted attributions weigh)."""
    named: dict[tuple[str, int], list[str]] = {}
    for row in rows:
        skills = named.setdefault((str(row["problem_id"]), int(row["sample_index"])), [])  # type: ignore[call-overload]
        if row["skill_id"] not in skills:
            skills.append(str(row["skill_id"]))
    return [Attribution(pid, index, tuple(skills)) for (pid, index), skills in named.items()]


def offered_by_problem(
    problem_ids: Sequence[str], labels: Mapping[str, Sequence[str]], vocab: Vocabulary, attribute_from: str
) -> dict[str, list[str]]:
    """problem id → the skill ids the teacher was offered to attribute its failures (as `_attribute` builds them)."""
    out = {}
    for pid in problem_ids:
        own = labels.get(pid, []) if attribute_from == "problem" else []
        out[pid] = offered_skills(own, vocab).ids
    return out


def chance_attributions(
    attributions: Sequence[Attribution], offered: Mapping[str, Sequence[str]], rng: random.Random
) -> list[Attribution]:
    """Each attribution with its skills replaced by as many skills drawn uniformly (without replacement) among
    the skills offered for its problem."""
    out = []
    for item in attributions:
        choices = list(offered[item.problem_id])
        drawn = rng.sample(choices, min(len(set(item.skills)), len(choices)))
        out.append(Attribution(item.problem_id, item.sample_index, tuple(drawn)))
    return out


@dataclass(frozen=True)
class Chance:
    """The measured rho against its chance distribution (nan draws — a constant fail_share — left out)."""

    measured: float
    draws: tuple[float, ...]
    undefined: int

    @property
    def median(self) -> float:
        return float(np.median(self.draws)) if self.draws else float("nan")

    @property
    def p95(self) -> float:
        return float(np.percentile(self.draws, 95)) if self.draws else float("nan")

    @property
    def p_value(self) -> float:
        """Share of draws with rho ≥ the measured rho (a tie counts: the teacher's choice equals a draw)."""
        if not self.draws:
            return float("nan")
        return sum(rho >= self.measured - 1e-12 for rho in self.draws) / len(self.draws)


def chance_baseline(
    attributions: Sequence[Attribution],
    offered: Mapping[str, Sequence[str]],
    shares_of: Callable[[Sequence[Attribution]], Mapping[str, float]],
    statistics: Mapping[str, Callable[[Mapping[str, float]], tuple[float, float]]],
    *,
    draws: int,
    seed: int,
) -> dict[str, Chance]:
    """Per statistic (name → fail_share mapping → (rho, p)): the measured rho on `attributions` and its
    distribution over `draws` seeded random redraws of them (`chance_attributions`), each profile computed by
    `shares_of` — the project's own profile arithmetic."""
    rng = random.Random(f"{seed}:chance")
    measured_shares = shares_of(attributions)
    values: dict[str, list[float]] = {name: [] for name in statistics}
    for _ in range(draws):
        shares = shares_of(chance_attributions(attributions, offered, rng))
        for name, statistic in statistics.items():
            values[name].append(statistic(shares)[0])
    out = {}
    for name, statistic in statistics.items():
        defined = tuple(v for v in values[name] if not np.isnan(v))
        out[name] = Chance(statistic(measured_shares)[0], defined, len(values[name]) - len(defined))
    return out


def profile_shares(
    config: ProjectConfig, labels: Mapping[str, list[str]], grades: Sequence[Mapping[str, object]]
) -> Callable[[Sequence[Attribution]], dict[str, float]]:
    """attributions → skill id → fail_share, by `scoring.grading.skills.profile_rows` (what
    `build_skill_profile` writes)."""

    def shares(attributions: Sequence[Attribution]) -> dict[str, float]:
        rows = profile_rows(
            student_id=config.student.id, student_revision="", labels=labels, grades=grades,
            attributions=attributions, strength=config.skills.sel_strength,
        )  # fmt: skip
        return {str(r["skill_id"]): float(r["fail_share"]) for r in rows}  # type: ignore[arg-type]

    return shares


# -- the report ------------------------------------------------------------------------------------------------------


def report(config, root, args, problem_skills, profile_counts, stats, seconds) -> str:  # noqa: ANN001
    lines: list[str] = []
    out = lines.append
    families = {p["problem_id"]: p["family"] for p in root.read_table("problems").to_pylist()}
    main_of = {f: FAMILIES.get(f).skill_ids()[0] for f in args.families}
    known, teacher = labels_by_labeler(problem_skills)
    name = teacher_model(args)
    cast = f"teacher = student = {args.model}" if name == args.model else f"student = {args.model}, teacher = {name}"
    out(f"Command (in {Path.cwd()}): `{shlex.join(sys.orig_argv)}`\n")
    out(f"# Skills recovery — {cast}\n")
    out(
        f"{len(families)} problems ({', '.join(args.families)}; levels {args.levels} × {args.per_level}), "
        f"k={args.k} rollouts ({args.prompt}, {args.max_tokens} tokens), {args.failures} failures attributed; "
        f"{stats['model_calls']} model calls, {stats['cache_hits']} cache hits, {seconds:.0f} s.\n"
    )
    overall = label_agreement(problem_skills)
    out("## (a) Teacher labels vs family tags\n")
    out(
        f"teacher labels include the family's main skill on {overall.get('main_included', 0):.0%} of "
        f"{overall['problems']} problems (first label = main skill: {overall.get('main_first', 0):.0%}; any overlap "
        f"with the family's tags: {overall.get('any_overlap', 0):.0%}); "
        f"{len(known) - overall['problems']} problems got no accepted teacher label.\n"
    )
    rows = []
    for family in args.families:
        pids = [p for p, f in families.items() if f == family]
        labeled = [p for p in pids if p in teacher]
        firsts = Counter(teacher[p][0] for p in labeled)
        rows.append(
            [
                family,
                main_of[family],
                len(pids),
                len(labeled),
                sum(main_of[family] in teacher[p] for p in labeled) / max(len(labeled), 1),
                ", ".join(f"{s} ({n})" for s, n in firsts.most_common(3)),
            ]
        )
    out(table(rows, ["family", "main skill", "problems", "labeled", "includes main", "teacher's first labels"]))
    grades = current_grades(config, root).to_pylist()
    part = {"student": config.student.id}
    attribution_rows = root.read_table("skill_attributions", part).to_pylist()
    profile = {r["skill_id"]: r for r in root.read_table("skill_profile", part).to_pylist()}
    named: dict[tuple[str, int], set[str]] = {}
    for row in attribution_rows:
        named.setdefault((row["problem_id"], row["sample_index"]), set()).add(row["skill_id"])
    out("\n## (b) Family pass rate vs missing-skill profile\n")
    out(
        f"{profile_counts['failed_rollouts']} failed rollouts, {profile_counts['failures_chosen']} shown to the "
        f"teacher, {profile_counts['failures_attributed']} attributed to ≥ 1 known skill.\n"
    )
    rows, weakness = [], []
    for family in args.families:
        mine = [g for g in grades if families.get(g["problem_id"]) == family]
        n, k = sum(g["n"] for g in mine), sum(g["k"] for g in mine)
        pass_rate = k / n if n else float("nan")
        hits = [skills for (pid, _), skills in named.items() if families.get(pid) == family]
        main = main_of[family]
        weakness.append(1 - pass_rate)
        rows.append(
            [
                family,
                main,
                pass_rate,
                n - k,
                len(hits),
                sum(main in s for s in hits) / max(len(hits), 1),
                (profile.get(main) or {}).get("fail_share") or 0.0,
                (profile.get(main) or {}).get("weight") or 0.0,
            ]
        )
    header = ["family", "main skill", "pass rate", "failed", "attributed", "names main", "fail_share", "weight"]
    out(table(rows, header))
    planted = Planted.of(args.families, weakness)
    stored_shares = {skill: (r.get("fail_share") or 0.0) for skill, r in profile.items()}
    rho, p_value = planted.per_family(stored_shares)
    out(
        f"\nSpearman rank correlation over {len(args.families)} families between weakness by pass rate "
        f"(1 − pass rate) and weakness by profile (fail_share of the main skill): rho = {rho:.3f} "
        f"(p = {p_value:.3f}; with {len(args.families)} points only a large |rho| means anything).\n"
    )
    # The same question per skill: every tag of every family, its profile fail_share against the weakness of the
    # families that carry it (pooled), so a teacher naming a family's second skill is not counted as a miss.
    rho, p_value = planted.per_skill(stored_shares)
    out(
        f"Per skill, over the families' {len(planted.carriers)} skill tags: Spearman rho between the skill's "
        f"fail_share and the weakness of its family = {rho:.3f} (p = {p_value:.3f}).\n"
    )
    out(chance_section(config, root, args, planted, grades, attribution_rows, stored_shares))
    out("## Profile (all skills, weakest first)\n")
    ordered = sorted(profile.values(), key=lambda r: (-r["fail_share"], r["pass_rate"] or 0.0))
    rows = [
        [r["skill_id"], r["n_problems"], r["pass_rate"] or 0.0, r["n_failures"], r["n_fail_attributed"],
         r["fail_share"], r["weight"] or 0.0]
        for r in ordered
    ]  # fmt: skip
    out(table(rows, ["skill", "problems", "pass rate", "failed", "attributed", "fail_share", "weight"]))
    return "\n".join(lines) + "\n"


def chance_section(config, root, args, planted, grades, attribution_rows, stored_shares) -> str:  # noqa: ANN001
    """(c): both rank correlations against random attributions among the offered skills."""
    labels = effective_labels(root.read_table("problem_skills"))
    vocab = read_vocabulary(root)
    attributions = stored_attributions(attribution_rows)
    offered = offered_by_problem(
        sorted({a.problem_id for a in attributions}), labels, vocab, config.skills.attribute_from
    )
    grades = [{"problem_id": g["problem_id"], "n": g["n"], "k": g["k"]} for g in grades]
    shares_of = profile_shares(config, labels, grades)
    recomputed = shares_of(attributions)
    drift = max((abs(recomputed.get(s, 0.0) - v) for s, v in stored_shares.items()), default=0.0)
    statistics = {"per family (main skill)": planted.per_family, "per skill tag": planted.per_skill}
    chance = chance_baseline(attributions, offered, shares_of, statistics, draws=args.draws, seed=args.seed)
    open_choices = sum(len(set(a.skills)) < len(offered[a.problem_id]) for a in attributions)
    lines = [
        "## (c) Chance baseline\n",
        f"{args.draws} seeded draws (seed {args.seed}): each of the teacher's {len(attributions)} accepted "
        f"attributions replaced by as many skills drawn at random among the skills it was offered "
        f"(`attribute_from: {config.skills.attribute_from}`); {open_choices} of them named fewer skills than offered "
        "(the others are the same in every draw). Each draw's profile is `scoring.grading.skills.profile_rows` on "
        "the stored labels and grades, so failures weigh by their problem's failed rollouts as in `fail_share` (on the "
        "teacher's own attributions it gives the stored profile: largest fail_share difference "
        f"{drift:.1e}). p = share of draws with rho ≥ measured; undefined = draws with a constant fail_share, "
        "left out.\n",
        table(
            [
                [name, points, c.measured, c.median, c.p95, c.measured - c.median, c.p_value, c.undefined]
                for (name, c), points in zip(
                    chance.items(), [len(planted.weakness), len(planted.carriers)], strict=True
                )
            ],
            ["rank correlation", "points", "rho", "chance median", "chance 95th pct", "rho − median", "p", "undefined"],
        ),
        "",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
