"""Verifier workers are locked down (issue 20): a worker that tries to write files or start processes fails,
and the same worker still checks answers correctly afterwards.

The attempts run inside the real worker: `sandbox_probe` functions are submitted through the `Verifier`'s own
pool, whose initializer (`decision.warm_up`) locked the worker down before any task arrived.
"""

from __future__ import annotations

import ctypes.util
import errno
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pebble import ProcessPool

from engines.errors import ConfigError
from scoring.grading import sandbox
from scoring.grading.verify import CheckItem, Verifier, VerifyConfig
from tests.scoring.grading import sandbox_probe

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the sandbox is Linux-only")


@pytest.fixture(scope="module")
def one_worker() -> Iterator[Verifier]:
    """One worker, so the escape attempts and the later verdicts run in the very same process."""
    with Verifier(VerifyConfig(workers=1, timeout_s=5.0)) as checker:
        yield checker


def _in_worker(checker: Verifier, function: Callable[..., Any], *args: object) -> Any:
    """Run `function` in the checker's (only) worker, after its lock-down."""
    return checker._pool.schedule(function, args=args, timeout=60).result()


def test_protections_are_reported(one_worker: Verifier) -> None:
    active = one_worker.protections()
    assert active["rlimit_fsize"] is True
    assert active["rlimit_nproc"] is (os.geteuid() != 0)  # the kernel ignores RLIMIT_NPROC for root
    assert active["seccomp"] is sandbox.seccomp_available()
    assert sandbox.active_protections() == {}, "the parent process must not be locked down"
    if ctypes.util.find_library("seccomp"):  # this machine has libseccomp: the filter must be in force
        assert active["seccomp"] is True


def test_worker_cannot_write_files_or_start_processes(one_worker: Verifier, tmp_path: Path) -> None:
    if not sandbox.seccomp_available():
        pytest.skip("libseccomp is not installed: rlimits alone do not stop processes for root")
    tmp = tmp_path / "inside"
    tmp.mkdir()
    outside = tmp_path.parent / f"outside-{os.getpid()}.txt"
    existing = tmp / "existing.txt"
    existing.write_text("original")

    outcomes = _in_worker(one_worker, sandbox_probe.try_escapes, str(tmp), str(outside), str(existing))

    allowed = {"thread", "read_existing"}
    escaped = {name: outcome for name, outcome in outcomes.items() if name not in allowed and "ALLOWED" in outcome}
    assert not escaped, escaped
    assert outcomes["read_existing"] == "ALLOWED ('original')"
    if os.geteuid() == 0:  # clone3 → ENOSYS, then clone with CLONE_THREAD: threads still work
        assert outcomes["thread"] == "ALLOWED ('ran')"
    assert sorted(p.name for p in tmp.iterdir()) == ["existing.txt"], "a file appeared"
    assert existing.read_text() == "original" and not outside.exists()


def test_inherited_stderr_file_cannot_be_written(one_worker: Verifier) -> None:
    outcome = _in_worker(one_worker, sandbox_probe.write_to_stderr_file)
    assert outcome in ("stderr is not a regular file", f"blocked: OSError errno {errno.EFBIG}"), outcome


def test_without_seccomp_rlimits_still_stop_file_data(tmp_path: Path) -> None:
    pool = ProcessPool(
        max_workers=1, context=multiprocessing.get_context("spawn"), initializer=sandbox_probe.warm_up_without_seccomp
    )
    try:
        active = pool.schedule(sandbox.active_protections, timeout=60).result()
        outcome = pool.schedule(sandbox_probe.write_data, args=(str(tmp_path / "data.txt"),), timeout=60).result()
    finally:
        pool.stop()
        pool.join()
    assert active["seccomp"] is False and active["rlimit_fsize"] is True
    assert outcome == f"blocked: OSError errno {errno.EFBIG}", outcome
    assert [p.stat().st_size for p in tmp_path.iterdir()] in ([], [0]), "data reached a file"


def test_missing_seccomp_is_warned_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sandbox, "_pyseccomp", lambda: None)
    monkeypatch.setattr(sandbox, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="scoring.grading.sandbox"):
        sandbox.warn_if_degraded()
        sandbox.warn_if_degraded()
    assert [r.message for r in caplog.records].count(
        "libseccomp/pyseccomp unavailable: verifier workers are limited by rlimits only"
    ) == 1


def test_worker_inherits_only_its_pipes(one_worker: Verifier) -> None:
    """Spawn gives the worker a clean descriptor table: stdio, pebble's task and result pipes, spawn's sentinel
    pair and the resource-tracker pipe, which the lock-down closes (stdin may appear twice as /dev/null)."""
    fds = _in_worker(one_worker, sandbox_probe.open_fds)
    assert fds[1] == "/dev/null", fds
    extra = {fd: target for fd, target in fds.items() if fd > 2 and target != "/dev/null"}
    assert all(target.startswith("pipe:") for target in extra.values()), fds
    assert len(extra) <= 4, fds


def test_verdicts_are_still_correct_after_the_attempts(one_worker: Verifier, tmp_path: Path) -> None:
    from synthesis.families import FAMILIES

    if sandbox.seccomp_available():  # the same worker as the other tests; make sure it has met the attempts
        (tmp_path / "existing.txt").write_text("original")
        outside, existing = tmp_path / "outside.txt", tmp_path / "existing.txt"
        _in_worker(one_worker, sandbox_probe.try_escapes, str(tmp_path), str(outside), str(existing))
    [countdown] = FAMILIES.get("countdown")().sample(0, [2], 1)
    items = [
        CheckItem("1/2", "\\boxed{0.5}"),
        CheckItem("\\sqrt{2}", "so \\boxed{2^{1/2}}"),
        CheckItem("3", "\\boxed{4}"),
        CheckItem(countdown.answer, f"One way: \\boxed{{{countdown.answer}}}", countdown),
    ]
    verdicts = one_worker.check(items)
    assert [v.label for v in verdicts] == ["correct", "correct", "wrong", "correct"], verdicts
    assert verdicts[3].rule == "family:countdown"


def test_reasoning_gym_is_imported_lazily_and_scores_in_the_locked_worker(one_worker: Verifier) -> None:
    from synthesis.reasoning_gym_source import rg_problems

    try:
        [rg] = rg_problems("basic_arithmetic", size=1, seed=0)
    except ConfigError as exc:  # refused by the reviewed-scorer table: nothing of reasoning-gym's runs then
        pytest.skip(str(exc))
    assert not _in_worker(one_worker, sandbox_probe.loaded_modules, "reasoning_gym"), "imported before lock-down"
    items = [CheckItem(rg.answer, f"The answer is {rg.answer}.", rg), CheckItem(rg.answer, f"It is {rg.answer}1.", rg)]
    verdicts = one_worker.check(items)
    assert [(v.label, v.rule) for v in verdicts] == [("correct", "family:rg:basic_arithmetic")] + [
        ("wrong", "family:rg:basic_arithmetic")
    ], verdicts
    assert _in_worker(one_worker, sandbox_probe.loaded_modules, "reasoning_gym")
