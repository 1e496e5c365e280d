# -*- test-case-name: tests.test_hardening -*-
"""
Process settings: the hardening applied before the key is read, as the original's
C{codex_process_hardening} does, and the resource settings applied once the service is
built (the open-files limit, a frozen heap).

Non-dumpable stops same-uid readers of C{/proc/<pid>/mem} and ptrace; a zero core limit
keeps the key out of core files; C{LD_*} removal only protects children (the loader
already ran), which is why the documented launch uses a clean environment too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import sys
from collections.abc import Iterable

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3
PT_DENY_ATTACH = 31

EXIT_PRCTL = 5
EXIT_PTRACE = 6
EXIT_RLIMIT = 7


class HardeningError(Exception):
    """
    A hardening step failed; the process must not go on to read the key.

    @ivar exitCode: the original's exit code for this step (5, 6 or 7).
    """

    def __init__(self, message: str, exitCode: int) -> None:
        super().__init__(message)
        self.exitCode = exitCode


def envKeysWithPrefix(keys: Iterable[bytes], prefix: bytes) -> list[bytes]:
    """
    The environment names starting with C{prefix}, compared as bytes so names that are
    not valid UTF-8 are matched too.
    """
    return [k for k in keys if k.startswith(prefix)]


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True)


def _osError(what: str) -> str:
    err = ctypes.get_errno()
    return f"ERROR: {what} failed: {os.strerror(err)} (os error {err})"


def setNonDumpable() -> None:
    """
    C{prctl(PR_SET_DUMPABLE, 0)}; also needed again after any uid/gid change.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = _libc()
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise HardeningError(_osError("prctl(PR_SET_DUMPABLE, 0)"), EXIT_PRCTL)


def isDumpable() -> bool | None:
    """
    The current dumpable flag on Linux, else L{None}.
    """
    if not sys.platform.startswith("linux"):
        return None
    return bool(_libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))


def disableCoreDumps() -> None:
    """
    C{RLIMIT_CORE} soft and hard 0, so it cannot be raised again without privilege.
    """
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as e:
        raise HardeningError(f"ERROR: setrlimit(RLIMIT_CORE) failed: {e}", EXIT_RLIMIT) from None


def scrubEnvironment() -> list[bytes]:
    """
    Remove C{LD_*} (and on macOS C{DYLD_*} and allocator logging) variables.

    @return: the names removed.
    """
    prefixes = [b"LD_"]
    if sys.platform == "darwin":
        prefixes += [b"DYLD_", b"MallocStackLogging", b"MallocLogFile"]
    removed: list[bytes] = []
    for prefix in prefixes:
        for key in envKeysWithPrefix(list(os.environb), prefix):
            del os.environb[key]
            removed.append(key)
    return removed


def _denyAttach() -> None:
    if sys.platform != "darwin":
        return
    if _libc().ptrace(PT_DENY_ATTACH, 0, None, 0) != 0:
        raise HardeningError(_osError("ptrace(PT_DENY_ATTACH)"), EXIT_PTRACE)


def hardenProcess() -> None:
    """
    Apply every step, in the original's order.

    @raise HardeningError: a step that must not fail did.
    """
    setNonDumpable()
    _denyAttach()
    disableCoreDumps()
    scrubEnvironment()


def raiseFileLimit() -> int:
    """
    Raise the soft limit on open files to the hard limit (best effort): every client
    connection and every upstream connection is a descriptor, and many idle clients
    must not starve a real request.

    @return: the soft limit now in force, or -1 if it could not be read.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 65536)
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return -1


def freezeHeap() -> None:
    """
    Everything built before serving lives for the life of the process: keep the
    collector from walking it again and again (shorter pauses under load).
    """
    gc.collect()
    gc.freeze()
