"""`gradus families`: lists every registered family with its knob range; an unknown name says "did you mean"."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from synthesis.families import FAMILIES


def test_lists_every_family_with_its_difficulty_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    for name in FAMILIES.names():
        knobs = FAMILIES.get(name).difficulties
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert f"{min(knobs)}–{max(knobs)}" in line
    assert "reasoning-gym datasets" in out


def test_shows_one_family_at_every_knob(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["families", "knights_knaves", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("answer:") == len(FAMILIES.get("knights_knaves").difficulties)


def test_unknown_family_suggests_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["families", "countdwn"]) == 2
    assert "did you mean 'countdown'" in capsys.readouterr().err
