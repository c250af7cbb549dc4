"""README command (a) measured: `gradus run` on a config from a fresh data root, with what it graded and kept.

    python bench/default_run.py [--config gradus.yaml] [--root /tmp/gradus-default-run] [--out FILE.md]

Runs `python -m pipelines.cli run` in a child process (the install is not timed: it is the same for every config)
with a fresh data root and a fresh Dagster instance, both under `--root` (deleted first). The embedded model files
are linked from the venv's registry packages on first use, as on a fresh machine. Reported:

* wall time and CPU time of the child and its peak resident memory (`getrusage(RUSAGE_CHILDREN).ru_maxrss`,
  the figure `/usr/bin/time -v` prints as "Maximum resident set size"), with the 1-minute load average before
  and after: another job on the cores inflates wall time (not CPU time or peak memory);
* each Dagster step's duration, from the run's own event log;
* graded problems, rollouts, bands and stop reasons, the curriculum size, trainer steps and the held-out accuracy
  before (step 0) and after training, from the data root's DuckDB catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scoring.catalog import connect_catalog  # noqa: E402
from scoring.config import load_config  # noqa: E402
from scoring.storage import DataRoot  # noqa: E402


def run_child(config: Path, root: Path) -> tuple[float, float, float, int, tuple[float, float]]:
    """(wall seconds, CPU seconds, peak RSS in GiB, exit code, (load before, load after)) of one `gradus run`."""
    env = os.environ | {
        "GRADUS_HOME": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster"),
        "PYTHONPATH": str(REPO),
    }
    (root / "dagster").mkdir(parents=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(root / "run.log", "w") as log:
        code = subprocess.call(
            [sys.executable, "-m", "pipelines.cli", "run", "--config", str(config)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_gb = usage.ru_maxrss / 1024**2  # Linux: kilobytes
    return wall, usage.ru_utime + usage.ru_stime, peak_gb, code, (load_before, os.getloadavg()[0])


def step_seconds(dagster_home: Path) -> list[tuple[str, float]]:
    """(step key, seconds) of the instance's one run, in the order the steps started."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        if not runs:
            return []
        stats = instance.get_run_step_stats(runs[0].run_id)
    done = [s for s in stats if s.start_time and s.end_time]
    return [(s.step_key, s.end_time - s.start_time) for s in sorted(done, key=lambda s: s.start_time)]


def outcomes(root: DataRoot, student: str) -> dict[str, object]:
    """What the run graded and kept, read back through the catalog."""
    with connect_catalog(root) as con:

        def one(sql: str) -> object:
            return con.sql(sql).fetchall()[0][0]

        where = f"student_id = '{student}'"
        figures: dict[str, object] = {
            "pool problems": one("select count(*) from problems"),
            "graded problems": one(f"select count(distinct problem_id) from difficulty where {where}"),
            "rollouts": one(f"select count(*) from rollouts where {where}"),
            "curriculum problems": one(f"select count(*) from curriculum where {where}"),
        }
        bands = con.sql(f"select band, count(*) from difficulty where {where} group by band order by band").fetchall()
        figures["bands"] = ", ".join(f"{band} {n}" for band, n in bands)
        by_source = con.sql(
            f"select p.source, count(*) from curriculum c join problems p using (problem_id) where c.{where} "
            "group by p.source order by p.source"
        ).fetchall()
        figures["curriculum by source"] = ", ".join(f"{source} {n}" for source, n in by_source)
        tables = {r[0] for r in con.sql("select table_name from information_schema.tables").fetchall()}
        if "training_steps" in tables:
            figures["trainer steps"] = one("select count(*) from training_steps")
            figures["trainer seconds per step"] = round(float(one("select avg(seconds) from training_steps")), 1)
        if "training_eval" in tables:
            for split, step, n, correct in con.sql(
                "select split, step, n, correct from training_eval order by split, step"
            ).fetchall():
                figures[f"held-out {split} @ step {step}"] = f"{correct}/{n}"
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "gradus.yaml")
    parser.add_argument("--root", type=Path, default=Path("/tmp/gradus-default-run"))
    parser.add_argument("--out", type=Path, default=None, help="also write the tables to this markdown file")
    parser.add_argument(
        "--report-only", action="store_true", help="do not run: report the run already measured under --root"
    )
    args = parser.parse_args()
    config_path = args.config.resolve()
    config = load_config(config_path)
    facts_path = args.root / "run_facts.json"
    if not args.report_only:
        shutil.rmtree(args.root, ignore_errors=True)
        args.root.mkdir(parents=True)
        # kept beside the data root, so the tables can be re-read without paying for the run again
        facts_path.write_text(json.dumps(run_child(config_path, args.root)))
    wall, cpu, peak_gb, code, (load_before, load_after) = json.loads(facts_path.read_text())
    lines = [
        f"config `{config_path.name}`, {os.cpu_count()} cores, exit code {code}",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| wall time (`gradus run`, after install) | {wall / 60:.1f} min |",
        # CPU time is what other jobs cannot inflate: on n idle cores the wall time is at least cpu / n
        f"| CPU time (user + system) | {cpu / 60:.1f} min |",
        f"| peak RSS | {peak_gb:.2f} GiB |",
        f"| 1-min load average before / after | {load_before:.2f} / {load_after:.2f} |",
    ]
    if code == 0:
        lines += [f"| {k} | {v} |" for k, v in outcomes(DataRoot(args.root / "data"), config.student.id).items()]
    lines += ["", "| Dagster step | seconds |", "|---|---:|"]
    lines += [f"| {key} | {seconds:.0f} |" for key, seconds in step_seconds(args.root / "dagster")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    if code != 0:
        print(f"gradus run failed; its output is in {args.root / 'run.log'}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
