"""`gradus sql` and `gradus history`, run as a user types them: the installed `gradus` script in a subprocess,
on a real data root whose `difficulty` table was graded twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scoring.catalog import refresh_catalog
from scoring.schemas import DIFFICULTY, to_table
from scoring.storage import DataRoot
from tests.conftest import write_project

GRADUS = str(Path(sys.executable).parent / "gradus")


def _grades(revision: str, rates: dict[str, float]) -> object:
    base = {"student_id": "s", "student_revision": revision, "sampling_hash": "h", "verifier_version": "v", "n": 4}
    return to_table([base | {"problem_id": p, "pass_rate": r, "k": int(4 * r)} for p, r in rates.items()], DIFFICULTY)


def _gradus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRADUS, *args], capture_output=True, text=True, timeout=300)


def test_sql_reads_the_latest_version_and_as_of_an_earlier_one(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "root")
    root.write_table("difficulty", _grades("r1", {"p1": 0.25, "p2": 0.5}), {"student": "s"})
    root.write_table("difficulty", _grades("r2", {"p1": 0.75, "p2": 1.0}), {"student": "s"})
    refresh_catalog(root)
    config = write_project(tmp_path, root.path, student={"id": "s"})
    query = "select student_revision, sum(pass_rate) as total from difficulty group by 1"
    latest = _gradus("sql", query, "--config", str(config))
    assert latest.returncode == 0, latest.stderr
    assert "r2" in latest.stdout and "1.75" in latest.stdout and "r1" not in latest.stdout
    earlier = _gradus("sql", query, "--config", str(config), "--as-of", "difficulty=0")
    assert earlier.returncode == 0, earlier.stderr
    assert "r1" in earlier.stdout and "0.75" in earlier.stdout and "r2" not in earlier.stdout

    listed = _gradus("history", "difficulty", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    lines = [line.split()[0] for line in listed.stdout.splitlines()[1:3]]
    assert lines == ["1", "0"] and "--as-of difficulty=0" in listed.stdout


def test_sql_names_a_bad_query_or_version_instead_of_crashing(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "root")
    root.write_table("difficulty", _grades("r1", {"p1": 0.25}), {"student": "s"})
    config = write_project(tmp_path, root.path, student={"id": "s"})
    bad_column = _gradus("sql", "select no_such_column from difficulty", "--config", str(config))
    assert bad_column.returncode == 2 and "no_such_column" in bad_column.stderr
    bad_flag = _gradus("sql", "select 1", "--config", str(config), "--as-of", "difficulty:0")
    assert bad_flag.returncode == 2 and "expected <table>=<version>" in bad_flag.stderr
    bad_table = _gradus("sql", "select 1", "--config", str(config), "--as-of", "dificulty=0")
    assert bad_table.returncode == 2 and "difficulty" in bad_table.stderr  # the did-you-mean
