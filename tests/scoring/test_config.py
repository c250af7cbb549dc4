"""gradus.yaml loading: unknown keys named, malformed YAML named, unsafe student ids refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.errors import ConfigError
from scoring.config import load_config, resolve_data_root

REPO = Path(__file__).resolve().parents[2]


def test_repo_default_config_loads() -> None:
    config = load_config(REPO / "gradus.yaml")
    assert config.student.engine.backend == "embedded"
    assert config.rollouts.k >= 1 and config.sources.procedural


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("student:\n  id: s\n  engnie: {}\n", "unknown key 'student.engnie'"),
        ("rollouts:\n  k: zero\n", "rollouts.k"),
        ("rollouts: [1, 2\n", "not valid YAML"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("student:\n  id: ../../etc\n", "not a safe name"),
        ("base_dir: /tmp\n", "unknown key 'base_dir'"),
        ("trainer:\n  precision: fp16\n", r"trainer.precision: Input should be 'fp32' or 'bf16'"),
        ("trainer:\n  activation_checkpointing: maybe\n", "trainer.activation_checkpointing"),
        ("sources:\n  imports:\n    - {path: a.jsonl, where: {level: []}}\n", r"sources.imports.0.where.level"),
        ("sources:\n  imports:\n    - {path: a.jsonl, where: {level: [[1]]}}\n", r"sources.imports.0.where.level.0"),
    ],
)
def test_bad_configs_name_the_file_and_the_problem(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "gradus.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_data_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gradus.yaml"
    path.write_text("data_root: out\n")
    config = load_config(path)
    monkeypatch.delenv("GRADUS_HOME", raising=False)
    assert resolve_data_root(config).path == tmp_path / "out"
    monkeypatch.setenv("GRADUS_HOME", str(tmp_path / "env"))
    assert resolve_data_root(config).path == tmp_path / "env"
    assert resolve_data_root(config, str(tmp_path / "cli")).path == tmp_path / "cli"
