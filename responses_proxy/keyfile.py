# -*- test-case-name: tests.test_keyfile -*-
"""
Key custody: read the API key from stdin into one locked, long-lived header value.

This module has no other job. The key is read with C{readv(2)} straight into a
page-aligned C{mmap} buffer that already starts with C{Bearer }, validated in place,
copied exactly once into the immutable C{bytes} that Twisted needs, and the buffer is
zeroed. C{sys.stdin}, C{os.read} and C{str} conversions are avoided because each of them
leaves an extra, unzeroable copy behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Callable

BUFFER_SIZE = 1024
_PREFIX = b"Bearer "

# RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")
_EQUALS = ord("=")

MSG_EMPTY = "API key must be provided via stdin: the key read from stdin was empty"
MSG_TOO_LARGE = f"API key is too large to fit in the {BUFFER_SIZE}-byte buffer"
MSG_INVALID = (
    "API key may only contain ASCII letters, numbers and - . _ ~ + /, with optional trailing ="
)

# Every header ever made stays referenced for the life of the process, so its memory is
# never freed (and reused unzeroed) while the lock is held; this is the Python stand-in
# for the original's String::leak().
_LIVE: list[bytes] = []


class KeyReadError(Exception):
    """
    The key could not be read or is not acceptable.

    The message never contains any byte of the input.
    """


class AuthorizationHeader:
    """
    The C{Authorization} header value, C{b"Bearer <key>"}, kept in one object.

    C{repr} and C{str} are redacted so the value cannot reach a log line by accident;
    only L{value} hands out the bytes, and only the HTTP client should call it.
    """

    __slots__ = ("_value", "locked")

    def __init__(self, value: bytes, locked: bool) -> None:
        self._value = value
        self.locked = locked

    @property
    def value(self) -> bytes:
        """
        The header value itself: C{b"Bearer <key>"}.
        """
        return self._value

    @property
    def key(self) -> memoryview:
        """
        A view of the key part, for finding it in untrusted data without copying it.
        """
        return memoryview(self._value)[len(_PREFIX) :]

    def __repr__(self) -> str:
        return "<AuthorizationHeader [REDACTED]>"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("the API key cannot be pickled")


Reader = Callable[[memoryview], int]


def _fdReader(fd: int) -> Reader:
    """
    A reader doing one C{readv(2)} straight into the caller's buffer.

    C{EINTR} is retried by CPython (PEP 475).
    """

    def read(view: memoryview) -> int:
        return os.readv(fd, [view])

    return read


def readAuthorization(fd: int = 0, reader: Reader | None = None) -> AuthorizationHeader:
    """
    Read the key and build the header value, as the original's C{read_api_key} does.

    Reading stops at the first newline (anything after it is ignored and the rest of
    the input is never read) or at end of file. Trailing CR and LF bytes are trimmed.

    @param fd: the file descriptor to read from (standard input).
    @param reader: reads into the given view and returns the byte count; for tests.
    @raise KeyReadError: empty input, too large, invalid characters, or an I/O error.
    """
    read = reader if reader is not None else _fdReader(fd)
    buf = mmap.mmap(-1, mmap.PAGESIZE)
    view = memoryview(buf)
    header: bytes | None = None
    error: str | None = None
    try:
        lockRegion(_addressOf(buf), BUFFER_SIZE)
        _dontDump(_addressOf(buf), mmap.PAGESIZE)
        view[: len(_PREFIX)] = _PREFIX
        end, error = _readInto(read, view, len(_PREFIX), BUFFER_SIZE)
        if error is None:
            while end > len(_PREFIX) and view[end - 1] in (0x0A, 0x0D):
                end -= 1
            if end == len(_PREFIX):
                error = MSG_EMPTY
            elif not _validToken(view, len(_PREFIX), end):
                error = MSG_INVALID
            else:
                header = bytes(view[:end])
    finally:
        # No exception object may hold a view of the buffer here: close() would fail.
        view[:] = b"\0" * len(view)
        view.release()
        unlockRegion(_addressOf(buf), BUFFER_SIZE)
        buf.close()
    if error is not None or header is None:
        raise KeyReadError(error or MSG_EMPTY)
    _LIVE.append(header)
    return AuthorizationHeader(header, lockBytes(header))


def _readInto(read: Reader, view: memoryview, start: int, limit: int) -> tuple[int, str | None]:
    """
    Fill C{view[start:limit]} until a newline or end of file.

    Like the original, a full buffer with neither newline nor EOF is an error, so the
    longest accepted key is one byte shorter than the space after C{Bearer }.
    Errors are returned, not raised, so no traceback keeps a view of the buffer alive.

    @return: the end offset of the bytes to keep, and an error message or L{None}.
    """
    end = start
    while True:
        if end == limit:
            return end, MSG_TOO_LARGE
        chunk = view[end:limit]
        try:
            n = read(chunk)
        except OSError as e:
            return end, f"failed to read the API key from stdin: {e.strerror or e}"
        finally:
            chunk.release()
        if n == 0:
            return end, None
        newline = _find(view, 0x0A, end, end + n)
        if newline >= 0:
            return newline + 1, None
        end += n


def _find(view: memoryview, byte: int, start: int, end: int) -> int:
    for i in range(start, end):
        if view[i] == byte:
            return i
    return -1


def _validToken(view: memoryview, start: int, end: int) -> bool:
    """
    Check the RFC 6750 C{b64token} grammar in place: token bytes, then only C{=}.
    """
    i = start
    while i < end and view[i] in _TOKEN_BYTES:
        i += 1
    if i == start:
        return False
    while i < end and view[i] == _EQUALS:
        i += 1
    return i == end


# --- memory locking -------------------------------------------------------------------

_libc: ctypes.CDLL | None = None


def _getLibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        if name is None:
            return None
        try:
            _libc = ctypes.CDLL(name, use_errno=True)
        except OSError:
            return None
    return _libc


def _addressOf(buf: mmap.mmap) -> int:
    holder = ctypes.c_char.from_buffer(buf)
    try:
        return ctypes.addressof(holder)
    finally:
        del holder


def _pageRange(address: int, length: int) -> tuple[int, int]:
    page = mmap.PAGESIZE
    start = address - (address % page)
    end = address + length
    end += (-end) % page
    return start, end - start


def lockRegion(address: int, length: int) -> bool:
    """
    C{mlock(2)} the pages covering a region; failure is reported, not raised.
    """
    libc = _getLibc()
    if libc is None or not hasattr(libc, "mlock"):
        return False
    start, size = _pageRange(address, length)
    return libc.mlock(ctypes.c_void_p(start), ctypes.c_size_t(size)) == 0


def unlockRegion(address: int, length: int) -> None:
    libc = _getLibc()
    if libc is not None and hasattr(libc, "munlock"):
        start, size = _pageRange(address, length)
        libc.munlock(ctypes.c_void_p(start), ctypes.c_size_t(size))


def _dontDump(address: int, length: int) -> None:
    libc = _getLibc()
    if libc is not None and hasattr(libc, "madvise"):
        madvDontDump = 16
        start, size = _pageRange(address, length)
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(size), madvDontDump)


def bytesAddress(value: bytes) -> int:
    """
    Where CPython keeps a C{bytes} object's data (objects never move).
    """
    address = ctypes.cast(ctypes.c_char_p(value), ctypes.c_void_p).value
    assert address is not None
    return address


def lockBytes(value: bytes) -> bool:
    """
    Lock the pages holding a C{bytes} object's data so they are not swapped out.

    Locks are not inherited across C{fork}, so a daemon calls this again.
    """
    return lockRegion(bytesAddress(value), len(value))


def lockedKilobytes() -> int | None:
    """
    This process's C{VmLck} in kB, from C{/proc/self/status} (Linux only).
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmLck:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
