"""`gradus report`: writes the picture report of the configured data root (or `--out`), byte-identical on a rerun,
and says what to do when the data root has no tables yet."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from tests.conftest import write_project
from tests.report_data import STUDENT, build_report_root


def test_gradus_report_writes_the_page_and_a_rerun_is_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_root = tmp_path / "root"
    build_report_root(data_root)
    config = write_project(tmp_path, data_root, student={"id": STUDENT})
    assert main(["report", "--config", str(config)]) == 0
    default = data_root / "reports" / "report.html"
    first = default.read_bytes()
    assert b'data-figure="posterior_knob"' in first and b"<svg" in first
    printed = capsys.readouterr().out
    assert str(default) in printed and "8 figures" in printed and "0 left as a note" in printed

    out = tmp_path / "elsewhere" / "r.html"
    assert main(["report", "--config", str(config), "--out", str(out)]) == 0
    assert out.read_bytes() == first  # same data, same bytes, wherever it is written


def test_gradus_report_on_an_empty_data_root_says_to_run_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_project(tmp_path, tmp_path / "empty")
    assert main(["report", "--config", str(config)]) == 1
    assert "run `gradus run` first" in capsys.readouterr().err
    assert not (tmp_path / "empty" / "reports").exists()
