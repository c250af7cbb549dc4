"""Planted-structure check for the skills layer (issue 8; methods §7 STAT): does the teacher recover what we know?

    nice python bench/skills_recovery.py [--model qwen2.5-coder-0.5b-instruct-q4_k_m] [--teacher MODEL]
        [--data-root /tmp/gradus-skills] [--families arithmetic linear_equations modular_arithmetic knights_knaves
        sequences] [--levels 1 3] [--per-level 2] [--k 4] [--prompt answer_only_v1] [--max-tokens 32]
        [--failures 24] [--threads N]

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
    the same over every skill tag of the families (a skill's family weakness against its fail_share).

The student's rollouts use `answer_only_v1` with a short budget by default so the whole run fits a CPU in minutes;
that suits the 0.5B student. The 1.5B Coder model ignores "answer only" and starts working, so give it
`--prompt solve_boxed_v1 --max-tokens 256` (at 160 tokens most of its answers are cut off before the box).
Everything goes through the persistent cache under `--data-root`, so a rerun with the same arguments prints the
same numbers for free.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy.stats import spearmanr  # noqa: E402

from engines.config import EngineConfig  # noqa: E402
from engines.models import EMBEDDED_MODELS, ensure_model  # noqa: E402
from scoring.config import ProjectConfig, StudentConfig  # noqa: E402
from scoring.roles import EngineRoles  # noqa: E402
from scoring.rollouts import RolloutConfig  # noqa: E402
from scoring.skill_stages import (  # noqa: E402
    build_problem_skills,
    build_skill_profile,
    build_skill_vocabulary,
)
from scoring.skills import SkillsConfig, label_agreement, labels_by_labeler  # noqa: E402
from scoring.stages import build_difficulty, build_problems, build_rollouts, current_grades  # noqa: E402
from scoring.storage import DataRoot  # noqa: E402
from synthesis.families import FAMILIES  # noqa: E402
from synthesis.sources import ProceduralSource, SourcesConfig  # noqa: E402

DEFAULT_FAMILIES = ["arithmetic", "linear_equations", "modular_arithmetic", "knights_knaves", "sequences"]


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
    report(config, root, args, labels.table, profile.counts, stats, seconds)


def report(config, root, args, problem_skills, profile_counts, stats, seconds) -> None:  # noqa: ANN001
    families = {p["problem_id"]: p["family"] for p in root.read_table("problems").to_pylist()}
    main_of = {f: FAMILIES.get(f).skill_ids()[0] for f in args.families}
    known, teacher = labels_by_labeler(problem_skills)
    name = teacher_model(args)
    cast = f"teacher = student = {args.model}" if name == args.model else f"student = {args.model}, teacher = {name}"
    print(f"# Skills recovery — {cast}\n")
    print(
        f"{len(families)} problems ({', '.join(args.families)}; levels {args.levels} × {args.per_level}), "
        f"k={args.k} rollouts ({args.prompt}, {args.max_tokens} tokens), {args.failures} failures attributed; "
        f"{stats['model_calls']} model calls, {stats['cache_hits']} cache hits, {seconds:.0f} s.\n"
    )
    overall = label_agreement(problem_skills)
    print("## (a) Teacher labels vs family tags\n")
    print(
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
    print(table(rows, ["family", "main skill", "problems", "labeled", "includes main", "teacher's first labels"]))
    grades = current_grades(config, root).to_pylist()
    part = {"student": config.student.id}
    attributions = root.read_table("skill_attributions", part).to_pylist()
    profile = {r["skill_id"]: r for r in root.read_table("skill_profile", part).to_pylist()}
    named: dict[tuple[str, int], set[str]] = {}
    for row in attributions:
        named.setdefault((row["problem_id"], row["sample_index"]), set()).add(row["skill_id"])
    print("\n## (b) Family pass rate vs missing-skill profile\n")
    print(
        f"{profile_counts['failed_rollouts']} failed rollouts, {profile_counts['failures_chosen']} shown to the "
        f"teacher, {profile_counts['failures_attributed']} attributed to ≥ 1 known skill.\n"
    )
    rows, weakness, shares = [], [], []
    for family in args.families:
        mine = [g for g in grades if families.get(g["problem_id"]) == family]
        n, k = sum(g["n"] for g in mine), sum(g["k"] for g in mine)
        pass_rate = k / n if n else float("nan")
        hits = [skills for (pid, _), skills in named.items() if families.get(pid) == family]
        main = main_of[family]
        share = (profile.get(main) or {}).get("fail_share") or 0.0
        weakness.append(1 - pass_rate)
        shares.append(share)
        rows.append(
            [
                family,
                main,
                pass_rate,
                n - k,
                len(hits),
                sum(main in s for s in hits) / max(len(hits), 1),
                share,
                (profile.get(main) or {}).get("weight") or 0.0,
            ]
        )
    header = ["family", "main skill", "pass rate", "failed", "attributed", "names main", "fail_share", "weight"]
    print(table(rows, header))
    rho, p_value = spearmanr(weakness, shares)
    print(
        f"\nSpearman rank correlation over {len(args.families)} families between weakness by pass rate "
        f"(1 − pass rate) and weakness by profile (fail_share of the main skill): rho = {rho:.3f} "
        f"(p = {p_value:.3f}; with {len(args.families)} points only a large |rho| means anything).\n"
    )
    # The same question per skill: every tag of every family, its profile fail_share against the weakness of the
    # families that carry it (pooled), so a teacher naming a family's second skill is not counted as a miss.
    family_weakness = dict(zip(args.families, weakness, strict=True))
    carriers: dict[str, list[str]] = {}
    for family in args.families:
        for skill in FAMILIES.get(family).skill_ids():
            carriers.setdefault(skill, []).append(family)
    skill_weakness = [sum(family_weakness[f] for f in fs) / len(fs) for fs in carriers.values()]
    skill_shares = [(profile.get(skill) or {}).get("fail_share") or 0.0 for skill in carriers]
    rho, p_value = spearmanr(skill_weakness, skill_shares)
    print(
        f"Per skill, over the families' {len(carriers)} skill tags: Spearman rho between the skill's fail_share and "
        f"the weakness of its family = {rho:.3f} (p = {p_value:.3f}).\n"
    )
    print("## Profile (all skills, weakest first)\n")
    ordered = sorted(profile.values(), key=lambda r: (-r["fail_share"], r["pass_rate"] or 0.0))
    rows = [
        [r["skill_id"], r["n_problems"], r["pass_rate"] or 0.0, r["n_failures"], r["n_fail_attributed"],
         r["fail_share"], r["weight"] or 0.0]
        for r in ordered
    ]  # fmt: skip
    print(table(rows, ["skill", "problems", "pass rate", "failed", "attributed", "fail_share", "weight"]))


if __name__ == "__main__":
    main()
