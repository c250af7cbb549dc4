"""Run inside a verifier worker (submitted through its pool) to try what untrusted text must never achieve.

Not a test module: `tests/scoring/grading/test_verifier_sandbox.py` imports it, and the spawned worker imports it
again by name, after the worker was locked down (so this import itself shows that lazy imports still work).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from scoring.grading import decision, sandbox


def _outcome(attempt: Callable[[], object]) -> str:
    """`blocked: <error>` when the attempt raised, else `ALLOWED` with what it returned."""
    try:
        result = attempt()
    except OSError as exc:
        return f"blocked: {type(exc).__name__} errno {exc.errno}"
    return f"ALLOWED ({result!r})"


def _write(path: Path, mode: str) -> None:
    with path.open(mode) as handle:
        handle.write("pwned")


def _fork() -> int:
    pid = os.fork()
    if pid == 0:  # only if the sandbox failed: leave the child at once, the test reports ALLOWED
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def _thread() -> str:
    seen: list[str] = []
    worker = threading.Thread(target=lambda: seen.append("ran"))
    worker.start()
    worker.join()
    return seen[0]


def write_data(path: str) -> str:
    """Write a few bytes to a new file (blocked by seccomp, or by RLIMIT_FSIZE alone without it)."""
    return _outcome(lambda: _write(Path(path), "w"))


def write_to_stderr_file() -> str:
    """Write to the inherited stderr when it is a regular file (pytest's capture file): RLIMIT_FSIZE stops it."""
    if not stat.S_ISREG(os.fstat(2).st_mode):
        return "stderr is not a regular file"
    return _outcome(lambda: os.write(2, b"pwned"))


def warm_up_without_seccomp() -> None:
    """The verifier's initializer on a machine without libseccomp: the rlimits-only fallback."""
    sandbox._pyseccomp = lambda: None  # type: ignore[assignment]
    decision.warm_up()


def try_escapes(tmp: str, outside: str, existing: str) -> dict[str, str]:
    """Every way to write a file or start a process the test knows; `existing` is a file the parent made."""
    tmp_dir, old = Path(tmp), Path(existing)
    attempts: dict[str, Callable[[], object]] = {
        "open_w_tmp": lambda: _write(tmp_dir / "open_w.txt", "w"),
        "open_x_tmp": lambda: _write(tmp_dir / "open_x.txt", "x"),
        "open_w_outside": lambda: _write(Path(outside), "w"),
        "open_append_existing": lambda: _write(old, "a"),
        "open_rplus_existing": lambda: _write(old, "r+"),
        "os_open_creat_wronly": lambda: os.open(tmp_dir / "creat_wronly.txt", os.O_CREAT | os.O_WRONLY),
        "os_open_creat_rdonly": lambda: os.open(tmp_dir / "creat_rdonly.txt", os.O_CREAT | os.O_RDONLY),
        "os_open_trunc_rdonly": lambda: os.open(old, os.O_TRUNC | os.O_RDONLY),
        "truncate": lambda: os.truncate(old, 0),
        "unlink": lambda: os.unlink(old),
        "rename": lambda: os.rename(old, tmp_dir / "renamed.txt"),
        "mkdir": lambda: os.mkdir(tmp_dir / "made"),
        "symlink": lambda: os.symlink(old, tmp_dir / "symlink"),
        "link": lambda: os.link(old, tmp_dir / "hardlink"),
        "chmod": lambda: os.chmod(old, 0o777),
        "subprocess_run": lambda: subprocess.run(["true"], check=False).returncode,
        "posix_spawn": lambda: os.posix_spawn("/bin/true", ["true"], {}),
        "fork": _fork,
        "execv": lambda: os.execv("/bin/true", ["true"]),
    }
    outcomes = {name: _outcome(attempt) for name, attempt in attempts.items()}
    # system() reports a shell it could not start as exit status 127 instead of raising
    touched = tmp_dir / "system.txt"
    status = os.system(f"touch {touched}")
    outcomes["os_system"] = f"ALLOWED ({status})" if status == 0 or touched.exists() else f"blocked: status {status}"
    outcomes["thread"] = _outcome(_thread)
    outcomes["read_existing"] = _outcome(old.read_text)
    return outcomes


def loaded_modules(prefix: str) -> list[str]:
    """The worker's imported modules whose name starts with `prefix`."""
    return sorted(name for name in sys.modules if name.startswith(prefix))


def open_fds() -> dict[int, str]:
    """The worker's file descriptors and what each points at."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, closed by now
            continue
    return fds
