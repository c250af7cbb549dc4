"""What a student's grades were used for: the curriculum's difficulty along its positions, the skill profile, and
the trainer's reward and held-out accuracy against step."""

from __future__ import annotations

from collections import defaultdict

from matplotlib.ticker import MaxNLocator

from scoring.reporting.figures import Catalog, ReportFigure, Scope, absent, empty, literal
from scoring.reporting.plots import PALETTE, new_figure, short, styled

MAX_SKILLS = 25  # skills drawn, lowest pass rate first
MAX_LEGEND = 8  # training runs named in a legend; past that the lines speak as a bundle


@styled
def curriculum_positions(catalog: Catalog, scope: Scope) -> ReportFigure:
    """Per curriculum strategy, each shard row's difficulty against its position, coloured by stage."""
    key, title = "curriculum", "Curriculum difficulty along its positions, per stage"
    caption = (
        "An easy-to-hard curriculum rises left to right and its stages come in order; a flat or jagged line means "
        "the order does not follow the grades."
    )
    pattern = r"/shards/([^/]+)/([^/]+)/shard-[0-9]+\.parquet$"
    query = (
        f"select regexp_extract(filename, '{pattern}', 2) as strategy, position, stage, difficulty\nfrom shards\n"
        f"where regexp_extract(filename, '{pattern}', 1) = {literal(scope.student_id)}\norder by strategy, position"
    )
    if catalog.missing("shards"):
        return absent(key, title, caption, query, ["shards"], " (materialize `curriculum_shards`)")
    by_strategy: dict[str, list[dict[str, float]]] = defaultdict(list)
    for row in catalog.rows(query):
        by_strategy[str(row["strategy"])].append(row)
    if not by_strategy:
        return empty(key, title, caption, query, "No curriculum shards for this student.")
    strategies = sorted(by_strategy)
    figure = new_figure(7.0, 0.4 + 2.4 * len(strategies))
    panels = figure.subplots(len(strategies), 1, squeeze=False)
    for axes, strategy in zip((p[0] for p in panels), strategies, strict=True):
        rows = by_strategy[strategy]
        positions = [int(r["position"]) for r in rows]
        axes.plot(positions, [float(r["difficulty"]) for r in rows], color="0.75", linewidth=1, zorder=1)
        for stage in sorted({int(r["stage"]) for r in rows if r["stage"] is not None}):
            points = [r for r in rows if r["stage"] == stage]
            axes.scatter(
                [int(r["position"]) for r in points],
                [float(r["difficulty"]) for r in points],
                s=16,
                color=PALETTE[stage % len(PALETTE)],
                label=f"stage {stage} ({len(points)})",
                zorder=2,
            )
        axes.set_title(f"{strategy} ({len(rows)} positions)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("difficulty (1 − post. mean)")
        axes.set_ylim(-0.03, 1.03)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper left")
    panels[-1][0].set_xlabel("curriculum position (training order)")
    return ReportFigure(key, title, caption, query, plot=figure)


@styled
def skill_profile(catalog: Catalog, scope: Scope) -> ReportFigure:
    """Per skill, the student's pass rate with its interval and the share of failures attributed to it."""
    key, title = "skills", "Skill profile"
    caption = (
        "Skills with a low pass rate and a large share of the attributed failures are what the student is missing; "
        "STAT-Sel weights the curriculum towards them."
    )
    query = (
        "select coalesce(s.name, p.skill_id) as skill, p.n_problems, p.pass_rate, p.pass_lo, p.pass_hi, "
        "p.fail_share\nfrom skill_profile p left join skills s using (skill_id)\n"
        f"where p.student_id = {literal(scope.student_id)} and p.student_revision = {literal(scope.revision)}\n"
        "order by p.pass_rate, skill"
    )
    if catalog.missing("skill_profile"):
        return absent(key, title, caption, query, ["skill_profile"], ": skills are off (skills.enabled in gradus.yaml)")
    if catalog.missing("skills"):
        query = query.replace("coalesce(s.name, p.skill_id)", "p.skill_id").replace(
            " left join skills s using (skill_id)", ""
        )
    rows = catalog.rows(query)[:MAX_SKILLS]
    if not rows:
        return empty(key, title, caption, query, "No skill profile for this revision (skills were off when it ran).")
    figure = new_figure(7.0, 1.0 + 0.32 * len(rows))
    left, right = figure.subplots(1, 2, sharey=True, width_ratios=[3, 2])
    y = list(range(len(rows)))
    rates = [float(r["pass_rate"] or 0.0) for r in rows]
    low = [
        rate - float(r["pass_lo"] if r["pass_lo"] is not None else rate) for rate, r in zip(rates, rows, strict=True)
    ]
    high = [
        float(r["pass_hi"] if r["pass_hi"] is not None else rate) - rate for rate, r in zip(rates, rows, strict=True)
    ]
    left.barh(y, rates, xerr=[low, high], color=PALETTE[0], alpha=0.8, error_kw={"elinewidth": 0.8})
    left.set_yticks(y, [f"{short(str(r['skill']), 32)} ({r['n_problems']})" for r in rows])
    left.set_xlim(0, 1)
    left.set_xlabel("pass rate (interval)")
    right.barh(y, [float(r["fail_share"] or 0.0) for r in rows], color=PALETTE[3], alpha=0.8)
    right.set_xlabel("share of attributed failures")
    for axes in (left, right):
        axes.grid(axis="x", alpha=0.3)
    return ReportFigure(key, title, caption, query, plot=figure)


@styled
def training_curves(catalog: Catalog, scope: Scope) -> ReportFigure:
    """Per training run of the student: mean reward against step, and held-out accuracy against step."""
    key, title = "training", "Training reward and held-out accuracy against step"
    caption = (
        "Reward should climb with steps; held-out accuracy (problems never trained on; step 0 is before any update) "
        "says whether that generalizes rather than being memorized."
    )
    who = literal(scope.student_id)
    steps_query = f"select run_id, step, reward_mean from training_steps where student_id = {who} order by run_id, step"
    eval_query = (
        f"select run_id, split, step, accuracy from training_eval where student_id = {who} order by run_id, split, step"
    )
    query = f"{steps_query};\n{eval_query};"
    if catalog.missing("training_steps", "training_eval") == ["training_steps", "training_eval"]:
        return absent(key, title, caption, query, ["training_steps", "training_eval"], " (the trainer has not run)")
    steps = catalog.rows(steps_query) if "training_steps" in catalog.views else []
    evals = catalog.rows(eval_query) if "training_eval" in catalog.views else []
    if not steps and not evals:
        return empty(key, title, caption, query, "The trainer has not run for this student.")
    figure = new_figure(7.5, 3.2)
    reward_axes, eval_axes = figure.subplots(1, 2)
    runs = sorted({str(r["run_id"]) for r in steps} | {str(r["run_id"]) for r in evals})
    colour = {run: PALETTE[i % len(PALETTE)] for i, run in enumerate(runs)}
    named = len(runs) <= MAX_LEGEND
    for run in runs:
        points = [r for r in steps if r["run_id"] == run and r["reward_mean"] is not None]
        if points:
            reward_axes.plot([r["step"] for r in points], [r["reward_mean"] for r in points], marker="o", markersize=3,
                             color=colour[run], linewidth=1 if named else 0.6, label=short(run, 28))  # fmt: skip
        for split, style in (("heldout", "-"), ("hard", "--")):
            points = [r for r in evals if r["run_id"] == run and r["split"] == split and r["accuracy"] is not None]
            if points:
                eval_axes.plot([r["step"] for r in points], [r["accuracy"] for r in points], style, marker="o",
                               markersize=3, color=colour[run], linewidth=1 if named else 0.6)  # fmt: skip
    reward_axes.set_title(f"mean reward ({len({r['run_id'] for r in steps})} runs)")
    reward_axes.set_xlabel("optimizer step")
    eval_axes.set_title("held-out accuracy (solid) · harder knob (dashed)")
    eval_axes.set_xlabel("optimizer step")
    for axes, rows, table in ((reward_axes, steps, "training_steps"), (eval_axes, evals, "training_eval")):
        if not rows:
            axes.text(0.5, 0.5, f"no {table} rows", ha="center", transform=axes.transAxes)
    eval_axes.set_ylim(-0.03, 1.03)
    for axes in (reward_axes, eval_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    if named and steps:
        reward_axes.legend(fontsize=7)
    return ReportFigure(key, title, caption, query, plot=figure)
