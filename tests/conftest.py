"""Shared fixtures. Real components only: the real 0.5B CPU model, real SQLite/DuckDB files, real Parquet.

The session data root is shared by the tests that call the model, so the persistent cache carries samples
between them and each distinct sample is paid for once per test session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import Engine
from engines.config import EngineConfig, build_engine

SMALL_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRADUS_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.fail(f"../shared/data not found at {SHARED}; set GRADUS_SHARED to the shared folder")
    return SHARED


@pytest.fixture(scope="session")
def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root for the whole session: one assembled model, one completion cache."""
    return tmp_path_factory.mktemp("gradus-session")


@pytest.fixture(scope="session")
def small_engine(session_root: Path) -> Iterator[Engine]:
    engine = build_engine(
        EngineConfig(backend="embedded", model=SMALL_MODEL, n_ctx=1024),
        session_root / "models",
        session_root / "cache" / "completions.sqlite",
    )
    yield engine
    engine.close()
