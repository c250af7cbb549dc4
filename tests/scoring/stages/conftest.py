"""Fixtures for the stage tests: a project config whose student is the small model, on a temp data root, and the
engine roles of a config all served by the session's one started small model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engines import Engine, EngineConfig
from scoring.config import ProjectConfig, StudentConfig
from scoring.stages.roles import ROLES, EngineRoles
from scoring.storage import DataRoot
from tests.conftest import SMALL_MODEL

MakeRoles = Callable[[ProjectConfig, DataRoot], EngineRoles]
"""The `roles` fixture's type: (config, data root) → engine roles."""


def project_config(data_root: Path, *, student: str = "s", n_ctx: int | None = None, **overrides: Any) -> ProjectConfig:
    """A project on `data_root` whose student, `student`, is the small model (context `n_ctx`, else the engine's
    default). `overrides` set any other `ProjectConfig` field, as a config object or a plain dict."""
    engine = EngineConfig(model=SMALL_MODEL) if n_ctx is None else EngineConfig(model=SMALL_MODEL, n_ctx=n_ctx)
    return ProjectConfig(data_root=str(data_root), student=StudentConfig(id=student, engine=engine), **overrides)


@pytest.fixture(scope="session")
def roles(small_engine: Engine) -> MakeRoles:
    """`roles(config, root)`: the student, teacher and generator of `config`, each one the session's small model
    (no second model is started)."""

    def build(config: ProjectConfig, root: DataRoot) -> EngineRoles:
        return EngineRoles(config, root, overrides=dict.fromkeys(ROLES, small_engine))

    return build
