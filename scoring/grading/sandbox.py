"""Lock a verifier worker down before it reads untrusted model text (defence in depth, issue 20).

The checkers only parse answers, nothing is `eval`ed; but a bug in a parser (sympy, latex2sympy, a family
scorer) must still not let model text write files or start programs. `lock_down()` runs once in each worker,
after its imports, and cannot be undone by the worker:

- RLIMIT_FSIZE = 0: writing to any regular file fails (EFBIG; SIGXFSZ is ignored so the worker survives).
- RLIMIT_NPROC = 0: no new processes or threads (the kernel ignores this limit for root, hence seccomp).
- a seccomp filter (libseccomp through `pyseccomp`) failing with EPERM: exec, fork/vfork, clone without
  CLONE_THREAD, opening files with a write/create flag, changing the file tree (rename, unlink, mkdir, link,
  truncate, chmod, ...), the ways around those rules (ptrace, process_vm_writev or pidfd_getfd on the
  unsandboxed parent, io_uring, open_by_handle_at) and root-only calls (mount, bpf, modules, ...). clone3 and
  openat2 fail with ENOSYS, so libc falls back to clone and openat, whose arguments a filter can inspect.
  Everything else is allowed: reads, imports, threads and the already-open pipes to the parent keep working.
- inherited descriptors: stdout goes to /dev/null and multiprocessing's resource-tracker pipe is closed; what
  stays (pebble's pipes, spawn's sentinel pair, stderr) is listed in `_neutralize_inherited_fds`.

Without libseccomp (or off Linux) the rlimits alone apply and `warn_if_degraded` says so once.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import signal
import sys
from functools import cache
from types import ModuleType

log = logging.getLogger(__name__)

_CLONE_THREAD = 0x00010000
_WRITE_FLAGS = (os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_TRUNC, os.O_APPEND)
_OPEN_FLAGS_ARG = {"open": 1, "openat": 2}  # which argument holds the flags
_DENIED = (
    *("execve", "execveat", "fork", "vfork", "creat"),
    *("rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "mknod", "mknodat"),
    *("link", "linkat", "symlink", "symlinkat", "truncate", "ftruncate"),
    *("chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "utime", "utimes", "utimensat"),
    # ways around the rules above: act through the unsandboxed parent, or open files where no filter looks
    *("ptrace", "process_vm_writev", "pidfd_getfd", "io_uring_setup", "open_by_handle_at"),
    # what only root could do, and CI runs as root
    *("mount", "umount2", "pivot_root", "chroot", "bpf", "init_module", "finit_module", "kexec_load", "reboot"),
)
_NOT_IMPLEMENTED = ("clone3", "openat2")  # their arguments sit behind a pointer a filter cannot read

_active: dict[str, bool] = {}
_warned = False


@cache
def _pyseccomp() -> ModuleType | None:
    """The libseccomp binding, or None when it (or libseccomp itself) is missing."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import pyseccomp  # ctypes; raises RuntimeError when libseccomp.so is not installed
    except (ImportError, OSError, RuntimeError):
        return None
    return pyseccomp


def seccomp_available() -> bool:
    """Whether `lock_down` can install the seccomp filter on this machine."""
    return _pyseccomp() is not None


def warn_if_degraded() -> None:
    """Log once per process when workers will run with rlimits only (called by the parent's `Verifier`)."""
    global _warned
    if not _warned and not seccomp_available():
        _warned = True
        log.warning("libseccomp/pyseccomp unavailable: verifier workers are limited by rlimits only")


def _add(sc: ModuleType, rules: object, action: int, name: str, *args: object) -> None:
    number = sc.resolve_syscall(sc.Arch.NATIVE, name)
    if number == -1:  # unknown to this (old) libseccomp: cannot deny it
        log.warning("seccomp: libseccomp does not know the syscall %s; it stays allowed", name)
    if number < 0:  # -1, or a pseudo-number: this architecture has no such syscall (e.g. open on aarch64)
        return
    rules.add_rule(action, name, *args)  # type: ignore[attr-defined]


def _install_seccomp(sc: ModuleType) -> None:
    rules = sc.SyscallFilter(defaction=sc.ALLOW)
    eperm = sc.ERRNO(errno.EPERM)
    for name in _DENIED:
        _add(sc, rules, eperm, name)
    for name in _NOT_IMPLEMENTED:
        _add(sc, rules, sc.ERRNO(errno.ENOSYS), name)
    _add(sc, rules, eperm, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))  # a process, not a thread
    for name, arg in _OPEN_FLAGS_ARG.items():
        for flag in _WRITE_FLAGS:  # one rule per flag: libseccomp ORs separate rules
            _add(sc, rules, eperm, name, sc.Arg(arg, sc.MASKED_EQ, flag, flag))
    rules.load()


def _neutralize_inherited_fds() -> bool:
    """Spawn leaves the worker only stdio and pipes: pebble's task and result pipes and spawn's sentinel pair
    (which tell each side the other died), all still needed, plus multiprocessing's resource-tracker pipe, unused
    here, which would unlink whatever /dev/shm names a compromised worker registered: close that. Stdout, unused,
    goes to /dev/null; stderr stays for tracebacks (when it is a regular file, RLIMIT_FSIZE fails those writes)."""
    from multiprocessing import resource_tracker

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    tracker = resource_tracker._resource_tracker
    fd = getattr(tracker, "_fd", None)
    if fd is None:
        return False
    os.close(fd)
    tracker._fd = None
    return True


def lock_down() -> dict[str, bool]:
    """Apply every protection this machine supports to the current process; returns `active_protections()`."""
    sys.dont_write_bytecode = True  # later lazy imports would only fail to write their .pyc
    _active["inherited_fds_closed"] = _neutralize_inherited_fds()
    sc = _pyseccomp()
    try:
        if sc is not None:
            _install_seccomp(sc)
    except OSError as exc:  # e.g. a kernel built without seccomp
        log.warning("seccomp filter not loaded (%s): this verifier worker is limited by rlimits only", exc)
        sc = None
    _active["seccomp"] = sc is not None
    # last, so the warnings above can still reach a stderr that is a regular file
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    _active["rlimit_fsize"] = True
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    _active["rlimit_nproc"] = os.geteuid() != 0  # set either way, but enforced only for non-root users
    return active_protections()


def active_protections() -> dict[str, bool]:
    """Which protections `lock_down` put in force in this process (empty when it has not run)."""
    return dict(_active)
