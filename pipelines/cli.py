"""`gradus run`: materialize the whole pipeline in-process on the configured student, then say where it went."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import dagster as dg
import duckdb
from filelock import FileLock

from assets.skills import stat_syn_problems
from assets.supervision import supervision
from assets.synthesis import restructured_problems
from engines.config import expected_revision
from engines.errors import GradusError
from pipelines.materialize import materialize_project, materialize_socratic_round
from pipelines.query import history_rows, parse_as_of, run_query
from pipelines.resources import default_config_path
from scoring.catalog import connect_catalog
from scoring.config import load_config, resolve_data_root
from scoring.stages.picture_report import build_picture_report
from synthesis.families import FAMILIES

SAMPLE_QUERY = """select d.student_id, p.family, p.difficulty_knob, count(*) as problems,
       round(avg(d.pass_rate), 3) as mean_pass_rate, sum(d.n) as rollouts
from difficulty d join problems p using (problem_id)
group by all order by d.student_id, p.family, p.difficulty_knob"""


# What the end of a run suggests trying: short enough to read, every column it names visible in the output.
CATALOG_HINT = "select student_id, problem_id, n, k, pass_rate, band from difficulty order by pass_rate limit 10"


def _instance(config_path: Path) -> dg.DagsterInstance:
    """The persistent instance from DAGSTER_HOME, else from the dagster.yaml beside the config, so runs made
    here show up in `dagster dev` started from the same directory. Two runs starting at once on a fresh home
    would both create Dagster's SQLite schema (and break every later run), so creation holds a file lock."""
    env_home = os.environ.get("DAGSTER_HOME")
    home = Path(env_home) if env_home else config_path.parent
    if not env_home and not (home / "dagster.yaml").is_file():
        return dg.DagsterInstance.ephemeral()
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home / ".gradus-instance.lock")):
        return dg.DagsterInstance.get() if env_home else dg.DagsterInstance.from_config(str(home))


def run(config_path: Path, data_root: str | None, verbose: bool) -> int:
    config = load_config(config_path)
    root = resolve_data_root(config, data_root)
    # Fail fast on a bad engine/model choice, before Dagster starts a run.
    expected_revision(config.student.engine, root.models_dir)
    print(
        f"gradus: config {config_path}  data root {root.path}  student {config.student.id} "
        f"({config.student.engine.backend}: {config.student.engine.model})",
        flush=True,
    )
    result = materialize_project(
        config_path,
        data_root=data_root,
        instance=_instance(config_path),
        run_config={"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "WARNING"}}}},
        raise_on_error=False,
        tags={"gradus/cli": "run"},
    )
    if not result.success:
        _report_failure(result)
        return 1
    rollout_meta = result.asset_materializations_for_node("rollouts")[0].metadata
    calls, hits = rollout_meta["model_calls"].value, rollout_meta["cache_hits"].value
    print(f"\ngradus: done. model calls {calls}, cache hits {hits}")
    print(f"  tables:   {root.tables_dir}")
    print(f"  shards:   {root.shards_dir / config.student.id}")
    print(f"  exports:  {root.path / 'exports' / config.student.id}  (verl, trl, hf_dataset)")
    trained = {k: v.value for k, v in result.asset_materializations_for_node("trainer")[0].metadata.items()}
    if "run_id" in trained:
        print(f"  trainer:  run {trained['run_id']}, consumed positions {trained.get('consumption_order', '')}")
    else:
        print(f"  trainer:  {trained.get('note', 'did not train')}")
    for report_event in result.asset_materializations_for_node("report"):
        print(f"  report:   {report_event.metadata['path'].value}   (open in a browser; `gradus report` redoes it)")
    print(f"  catalog:  {root.catalog_path}   (gradus sql '{CATALOG_HINT}'{_flags(config_path)})")
    with connect_catalog(root) as con:  # waits while a concurrent run refreshes the views
        print("\n" + SAMPLE_QUERY + ";")
        print(con.sql(SAMPLE_QUERY))
    return 0


def _flags(config_path: Path) -> str:
    """The `--config` flag a follow-up command needs to find this run's config (none for the default one)."""
    return "" if config_path == default_config_path().resolve() else f" --config {shlex.quote(str(config_path))}"


def _report_failure(result: dg.ExecuteInProcessResult) -> None:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:  # Dagster wraps the real error; show the innermost one
                error = error.cause
            print(f"gradus: step {event.step_key} failed: {error.message.strip()}", file=sys.stderr)


def _print_synthesis(result: dg.ExecuteInProcessResult, node: str) -> None:
    for materialization in result.asset_materializations_for_node(node):
        meta = {k: v.value for k, v in materialization.metadata.items()}
        if meta.get("enabled") is False:
            print(f"  {node}: off ({meta.get('note', '')})")
            continue
        counts = {k: v for k, v in meta.items() if isinstance(v, int) and not k.startswith("dagster/")}
        shown = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8])
        print(f"  {node}: {meta.get('dagster/row_count', 0)} accepted ({shown})")


def synthesize(config_path: Path, data_root: str | None, verbose: bool, rounds: int | None) -> int:
    """Problems from the student's grades (restructuring, STAT-Syn, Socratic-Zero rounds), then a full rebuild
    that grades them. Needs a graded pool: run `gradus run` first."""
    config = load_config(config_path)
    instance = _instance(config_path)
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "WARNING"}}}}
    print(f"gradus: synthesizing from the grades of student {config.student.id}", flush=True)
    result = materialize_project(
        config_path,
        selection=[restructured_problems, stat_syn_problems],
        data_root=data_root,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
        tags={"gradus/cli": "synthesize"},
    )
    if not result.success:
        _report_failure(result)
        return 1
    _print_synthesis(result, "restructured_problems")
    _print_synthesis(result, "stat_syn_problems")
    socratic = config.synthesis.socratic
    for round_no in range(1, (rounds or socratic.rounds) + 1) if socratic.enabled else ():
        result = materialize_socratic_round(
            config_path,
            round_no,
            data_root=data_root,
            instance=instance,
            run_config=run_config,
            raise_on_error=False,
            tags={"gradus/cli": "synthesize", "gradus/student": config.student.id},
        )
        if not result.success:
            _report_failure(result)
            return 1
        _print_synthesis(result, "socratic_problems")
    if not socratic.enabled:
        print("  socratic_problems: off (set synthesis.socratic.enabled: true in gradus.yaml)")
    print("gradus: grading the new problems (full rebuild)", flush=True)
    return run(config_path, data_root, verbose)


SUPERVISION_QUERY = """select policy, kept, dropped, problems, round(correct_share, 3) as correct_share,
       round(mean_step_error_rate, 3) as mean_step_error_rate, round(mean_pass_rate, 3) as mean_pass_rate
from supervision_policies where student_id = ? order by policy"""


def supervise(config_path: Path, data_root: str | None, verbose: bool) -> int:
    """SFT traces, policy selections, preference pairs and their exports from the student's current grades
    (the `supervision` asset alone: run `gradus run` first)."""
    config = load_config(config_path)
    root = resolve_data_root(config, data_root)
    if not config.supervision.enabled:
        print("gradus: supervision is off: set supervision.enabled: true in gradus.yaml", file=sys.stderr)
        return 2
    print(f"gradus: supervision data for student {config.student.id}", flush=True)
    result = materialize_project(
        config_path,
        selection=[supervision],
        data_root=data_root,
        instance=_instance(config_path),
        run_config={"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "WARNING"}}}},
        raise_on_error=False,
        tags={"gradus/cli": "supervise"},
    )
    if not result.success:
        _report_failure(result)
        return 1
    meta = {k: v.value for k, v in result.asset_materializations_for_node("supervision")[0].metadata.items()}
    print(f"  traces: {meta.get('traces', 0)}  preference pairs: {meta.get('preference_pairs', 0)}  ({meta['status']})")
    print(
        f"  exports: {root.path / 'exports' / config.student.id / 'supervision'}  (per policy: trl, verl, hf_dataset)"
    )
    with connect_catalog(root) as con:
        print(con.execute(SUPERVISION_QUERY, [config.student.id]).fetch_df().to_string(index=False))
    return 0


def families(name: str | None, seed: int) -> int:
    """List the registered procedural families, or show one with a sample problem at each knob setting."""
    if name is None:
        print(f"{'family':<22} difficulties  description")
        for family_name in FAMILIES.names():
            cls = FAMILIES.get(family_name)
            knobs = cls.difficulties
            summary = (sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
            print(f"{family_name:<22} {min(knobs)}–{max(knobs):<10}  {summary}")
        try:
            from synthesis.reasoning_gym_source import rg_dataset_names

            print(f"\n+ {len(rg_dataset_names())} reasoning-gym datasets (sources.reasoning_gym in gradus.yaml)")
        except ImportError:
            pass
        return 0
    family = FAMILIES.get(name)()
    for difficulty in family.difficulties:
        [problem] = family.sample(seed, [difficulty], 1)
        print(f"[{difficulty}] {problem.question}\n    answer: {problem.answer}")
    return 0


def sql(config_path: Path, data_root: str | None, query: str, as_of: list[str], max_rows: int) -> int:
    """Print the result of `query` on the catalog (tables in `as_of` at an earlier version)."""
    root = resolve_data_root(load_config(config_path), data_root)
    try:
        result = run_query(root, query, parse_as_of(as_of))
    except duckdb.Error as exc:
        print(f"gradus: query failed: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        result.show(max_rows=max_rows, max_width=200)
    return 0


def history(config_path: Path, data_root: str | None, table: str) -> int:
    """Print the versions of `table`, newest first, and how to read one of them."""
    root = resolve_data_root(load_config(config_path), data_root)
    rows = history_rows(root, table)
    if not rows:
        print(f"gradus: table {table!r} has not been written under {root.path}")
        return 1
    print(f"{'version':>7}  {'committed (UTC)':<19}  {'operation':<10}  detail")
    for version, stamp, operation, detail in rows:
        print(f"{version:>7}  {stamp:<19}  {operation:<10}  {detail}")
    print(f"\nread an earlier version: gradus sql 'select count(*) from {table}' --as-of {table}={rows[-1][0]}")
    return 0


def report(config_path: Path, data_root: str | None, out: Path | None) -> int:
    """Write the picture report of the data root (one offline HTML file) and say where it went."""
    config = load_config(config_path)
    root = resolve_data_root(config, data_root)
    if not root.tables_dir.is_dir():
        print(f"gradus: {root.path} has no tables yet: run `gradus run` first", file=sys.stderr)
        return 1
    summary = build_picture_report(config, root, out)
    counts = summary.counts
    print(
        f"gradus: report of {counts['students']} student(s): {counts['figures']} figures, "
        f"{counts['notes_only']} left as a note (table absent or feature off), {counts['bytes']} bytes"
    )
    print(f"  {summary.path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gradus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="materialize problems → rollouts → difficulty → curriculum shards")
    run_p.add_argument("--config", type=Path, default=None, help="gradus.yaml (default: $GRADUS_CONFIG or ./)")
    run_p.add_argument("--data-root", default=None, help="override data_root and GRADUS_HOME")
    run_p.add_argument("--verbose", action="store_true", help="show Dagster's step events (default: warnings)")
    syn_p = sub.add_parser(
        "synthesize", help="new problems from the student's grades (restructure, STAT-Syn, Socratic), then regrade"
    )
    syn_p.add_argument("--config", type=Path, default=None, help="gradus.yaml (default: $GRADUS_CONFIG or ./)")
    syn_p.add_argument("--data-root", default=None, help="override data_root and GRADUS_HOME")
    syn_p.add_argument("--rounds", type=int, default=None, help="Socratic rounds (default: synthesis.socratic.rounds)")
    syn_p.add_argument("--verbose", action="store_true")
    sup_p = sub.add_parser("supervise", help="SFT traces and preference pairs chosen by difficulty, with exports")
    sup_p.add_argument("--config", type=Path, default=None, help="gradus.yaml (default: $GRADUS_CONFIG or ./)")
    sup_p.add_argument("--data-root", default=None, help="override data_root and GRADUS_HOME")
    sup_p.add_argument("--verbose", action="store_true")
    sql_p = sub.add_parser("sql", help="run a DuckDB query on the data root's catalog (tables as views)")
    sql_p.add_argument(
        "query", help='e.g. "select family, avg(pass_rate) from difficulty join problems using (problem_id) group by 1"'
    )
    sql_p.add_argument("--config", type=Path, default=None, help="gradus.yaml (default: $GRADUS_CONFIG or ./)")
    sql_p.add_argument("--data-root", default=None, help="override data_root and GRADUS_HOME")
    sql_p.add_argument(
        "--as-of", action="append", default=[], metavar="TABLE=VERSION",
        help="read TABLE as it was at VERSION (time travel; versions from `gradus history TABLE`); repeatable",
    )  # fmt: skip
    sql_p.add_argument("--max-rows", type=int, default=200, help="rows to print (default 200)")
    hist_p = sub.add_parser("history", help="list the versions (commits) of a table, newest first")
    hist_p.add_argument("table", help="e.g. difficulty")
    hist_p.add_argument("--config", type=Path, default=None, help="gradus.yaml (default: $GRADUS_CONFIG or ./)")
    hist_p.add_argument("--data-root", default=None, help="override data_root and GRADUS_HOME")
    rep_p = sub.add_parser("report", help="write the picture report: one offline HTML file of the data root's figures")
    rep_p.add_argument("--config", type=Path, default=None, help="gradus.yaml (default: $GRADUS_CONFIG or ./)")
    rep_p.add_argument("--data-root", default=None, help="override data_root and GRADUS_HOME")
    rep_p.add_argument(
        "--out", type=Path, default=None, help="HTML file to write (default <data root>/reports/report.html)"
    )
    fam_p = sub.add_parser("families", help="list procedural problem families, or show one with samples")
    fam_p.add_argument("name", nargs="?", help="a family name to show samples of")
    fam_p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command == "families":
            return families(args.name, args.seed)
        config_path = (args.config or default_config_path()).resolve()
        if args.command == "sql":
            return sql(config_path, args.data_root, args.query, args.as_of, args.max_rows)
        if args.command == "report":
            return report(config_path, args.data_root, args.out)
        if args.command == "history":
            return history(config_path, args.data_root, args.table)
        if args.command == "supervise":
            return supervise(config_path, args.data_root, args.verbose)
        if args.command == "synthesize":
            return synthesize(config_path, args.data_root, args.verbose, args.rounds)
        return run(config_path, args.data_root, args.verbose)
    except GradusError as exc:
        print(f"gradus: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
