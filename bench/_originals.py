"""
The side-by-side pieces of C{bench_proxy.py}: the Rust original and a TLS upstream.

  - The Rust original, C{codex responses-api-proxy}, as bundled in the Codex CLI npm
    package pinned below (C{npm install --prefix .cache/codex @openai/codex@0.171.0}, or
    C{CODEX_BIN}); started like this proxy (key on stdin, C{--server-info},
    C{--http-shutdown}, C{--upstream-url}) and stopped with C{GET /shutdown}.
  - A TLS upstream: the benchmark's upstream (the tests' fake) serving HTTPS with a server
    certificate from a throwaway CA made by the tests' own C{makeCAAndLeaf}; both proxies
    trust that CA through C{SSL_CERT_FILE} (this one through OpenSSL's default verify
    paths; the original honours it too: without it, the same request through it fails
    with a 500 and "forwarding error" on its stderr).
  - Clients for the "direct" rows over TLS: a blocking socket and an asyncio
    connection, both verifying the upstream against the CA.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import _benchlib as lib

CODEX_VERSION = "0.171.0"
_LOCAL_CODEX = lib.REPO / ".cache" / "codex" / "node_modules" / ".bin" / "codex"


# --------------------------------------------------------------------------- the original


def codexBinary() -> Path | None:
    """
    The C{codex} launcher: C{$CODEX_BIN}, else the project's C{.cache/codex} install.
    """
    configured = os.environ.get("CODEX_BIN")
    for candidate in (Path(configured) if configured else None, _LOCAL_CODEX):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def codexVersion(binary: Path) -> str:
    """
    What C{codex --version} says (e.g. C{codex-cli 0.171.0}).
    """
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown version"
    return out.decode("utf-8", "replace").strip() or "unknown version"


def _pinAll(pid: int, cpus: set[int] | None) -> None:
    """
    Pin every thread of a process (the original runs a thread per request and a
    runtime of its own; C{sched_setaffinity} applies to one thread at a time).
    """
    if cpus is None:
        return
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = [str(pid)]
    for task in tasks:
        try:
            os.sched_setaffinity(int(task), cpus)
        except OSError:
            pass


def startOriginal(
    workdir: Path, binary: Path, upstreamURL: str, cpus: set[int] | None
) -> lib.Child:
    """
    C{codex responses-api-proxy} as a child process, its key on stdin, ready to serve.

    The npm launcher (node) starts the native binary; the server-info file names the
    native process, which is the one measured and stopped.
    """
    name = "original"
    (workdir / f"{name}.json").unlink(missing_ok=True)
    argv = [
        str(binary),
        "responses-api-proxy",
        "--server-info",
        str(workdir / f"{name}.json"),
        "--http-shutdown",
        "--upstream-url",
        upstreamURL,
    ]
    child = lib.Child(name, argv, workdir, stdin=lib.KEY + b"\n", cpus=cpus)
    try:
        child.waitReady(timeout=60)
    except BaseException:
        child.stop()
        raise
    _pinAll(child.pid, cpus)
    return child


# --------------------------------------------------------------------------- TLS


class TLS:
    """
    A throwaway CA and the upstream's certificate (for C{localhost} and 127.0.0.1).

    @ivar ca: the CA certificate (what C{SSL_CERT_FILE} points at).
    @ivar cert: the server certificate.
    @ivar key: its private key.
    """

    def __init__(self, directory: Path) -> None:
        if str(lib.REPO) not in sys.path:
            sys.path.insert(0, str(lib.REPO))
        from tests.support.fake import makeCAAndLeaf

        files = makeCAAndLeaf(directory)
        assert files.ca is not None
        self.ca: Path = files.ca
        self.cert: Path = files.cert
        self.key: Path = files.key
        self._client = ssl.create_default_context(cafile=str(self.ca))

    def connect(self, port: int, timeout: float = 30.0) -> socket.socket:
        """
        A blocking TLS connection to the upstream (handshake done), like C{lib.connect}.
        """
        sock = lib.connect(port, timeout)
        try:
            return self._client.wrap_socket(sock, server_hostname=lib.HOST)
        except BaseException:
            sock.close()
            raise

    async def openAsync(self, port: int) -> lib.AsyncClient:
        """
        An asyncio keep-alive client over TLS, like C{lib.AsyncClient.open}.
        """
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lib.AsyncClient, lib.HOST, port, ssl=self._client, server_hostname=lib.HOST
        )
        return protocol


def startTLSUpstream(workdir: Path, tls: TLS, cpus: set[int] | None) -> lib.Child:
    """
    The benchmark's upstream (the tests' fake, as C{_benchlib.startUpstream} runs it)
    serving HTTPS; its control port stays plain.
    """
    argv = [
        lib.PYTHON, "-m", "tests.fakeupstream", "--info", str(workdir / "upstream.json"),
        "--no-record", "--tls-cert", str(tls.cert), "--tls-key", str(tls.key),
    ]
    child = lib.Child("upstream", argv, workdir, cpus=cpus)
    try:
        return child.waitReady()
    except BaseException:
        child.stop()
        raise


def removeTree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
