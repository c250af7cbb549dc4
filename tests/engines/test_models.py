"""Embedded model assembly from registry packages, sha256 verification and config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engines.config import EngineConfig, build_backend
from engines.errors import ConfigError, IntegrityError
from engines.models import EMBEDDED_MODELS, EmbeddedModel, ensure_model, file_sha256, resolve_model_file
from tests.conftest import SMALL_MODEL


def test_assembles_verifies_and_reuses(tmp_path: Path) -> None:
    spec = EMBEDDED_MODELS[SMALL_MODEL]
    path = ensure_model(spec, tmp_path)
    assert path.stat().st_size > 400_000_000
    assert file_sha256(path) == spec.sha256
    mtime = path.stat().st_mtime_ns
    assert ensure_model(spec, tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # verified once, not rebuilt


def test_damaged_file_is_rebuilt(tmp_path: Path) -> None:
    spec = EMBEDDED_MODELS[SMALL_MODEL]
    path = ensure_model(spec, tmp_path)
    with open(path, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\xff\x00\xff")
    assert file_sha256(ensure_model(spec, tmp_path)) == spec.sha256


def test_wrong_pinned_hash_is_refused(tmp_path: Path) -> None:
    real = EMBEDDED_MODELS[SMALL_MODEL]
    forged = EmbeddedModel("forged", "forged.gguf", "0" * 64, real.distributions, real.extra, "")
    with pytest.raises(IntegrityError, match="sha256"):
        ensure_model(forged, tmp_path)
    assert not any(tmp_path.iterdir()), "no partial or unverified file may be left behind"


def test_missing_packages_say_how_to_install(tmp_path: Path) -> None:
    ghost = EmbeddedModel("ghost", "ghost.gguf", "0" * 64, ("gradus-no-such-part1",), "model-ghost", "")
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[model-ghost\]'"):
        ensure_model(ghost, tmp_path)


def test_unknown_model_name_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_model_file("qwen2.5-coder-0.5b", tmp_path)
    message = str(info.value)
    assert "did you mean" in message and SMALL_MODEL in message


def test_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model_file(str(tmp_path / "nope.gguf"), tmp_path)


def test_unknown_backend_names_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_backend(EngineConfig(backend="llamacpp"), tmp_path)
    assert "embedded" in str(info.value) and "openai" in str(info.value) and "vllm" in str(info.value)


def test_openai_backend_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        build_backend(EngineConfig(backend="openai", model="m"), tmp_path)
