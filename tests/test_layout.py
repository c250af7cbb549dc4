"""The layout is checked, not just described (issue 21): every module of `scoring/` sits in one of the levels the
import-linter contract in pyproject.toml declares, so a new top-level module cannot escape the layering."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _scoring_layers() -> list[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers" and c["layers"][0].startswith("scoring."))
    return [name.strip() for layer in layers for name in layer.replace(":", "|").split("|")]


def test_every_scoring_module_is_in_a_declared_level() -> None:
    declared = set(_scoring_layers())
    found = {
        "scoring." + (path.stem if path.suffix == ".py" else path.name)
        for path in (REPO / "scoring").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert found - declared == set(), "modules outside every level: add them to the contract in pyproject.toml"
    assert declared - found == set(), "the contract names modules that do not exist"
