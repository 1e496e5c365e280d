"""
Tests for L{responses_proxy.cli}: the console script as a new user meets it (help,
version, a pipe closed early, an empty stdin, a terminal on stdin).
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy import __version__
from tests.support.procs import makeTempDir, pythonEnv
from tests.support.proxy import DEFAULT_KEY, scriptPath
from tests.support.wire import parseResponse

SCRIPT = scriptPath("codex-responses-api-proxy")


def run(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [SCRIPT, *args], input=stdin, capture_output=True, env=pythonEnv(), timeout=30
    )


class HelpTests(SynchronousTestCase):
    """
    C{--help}, C{-h} and C{--version}.
    """

    def test_helpStartsWithUsage(self) -> None:
        """The first line is a usage line naming the command; -h is the same; exit 0."""
        for flag in ["--help", "-h"]:
            result = run([flag])
            self.assertEqual(result.returncode, 0)
            first = result.stdout.decode().splitlines()[0]
            self.assertTrue(first.startswith("Usage: codex-responses-api-proxy [--port PORT]"))
            self.assertIn("--bridge-to-chat", result.stdout.decode())

    def test_version(self) -> None:
        """--version prints the package's version, not Twisted's."""
        result = run(["--version"])
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout.decode().strip(), f"codex-responses-api-proxy {__version__}")

    def test_helpIntoAClosedPipe(self) -> None:
        """C{--help | head -1}: the reader leaves after one line; no traceback, exit 0."""
        reader, writer = os.pipe()
        process = subprocess.Popen(
            [SCRIPT, "--help"], stdout=writer, stderr=subprocess.PIPE, env=pythonEnv()
        )
        os.close(writer)
        with os.fdopen(reader, "rb") as pipe:
            self.assertTrue(pipe.readline().startswith(b"Usage: "))
        _, err = process.communicate(timeout=30)
        self.assertEqual((process.returncode, err), (0, b""))

    def test_usageError(self) -> None:
        """An unknown option: one line naming it, the usage line, exit 2."""
        result = run(["--bogus"])
        self.assertEqual(result.returncode, 2)
        lines = result.stderr.decode().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertIn("--bogus", lines[0])
        self.assertTrue(lines[1].startswith("Usage: codex-responses-api-proxy"))


class StdinTests(SynchronousTestCase):
    """
    Where the key comes from, said plainly.
    """

    def test_emptyStdin(self) -> None:
        """An empty stdin says the key read from stdin was empty."""
        result = run([], stdin=b"")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.decode().strip(),
            "Error: API key must be provided via stdin: the key read from stdin was empty",
        )

    def test_terminalOnStdin(self) -> None:
        """On a terminal the proxy says it waits for the key there and does not echo it."""
        info = makeTempDir(self) / "info.json"
        master, slave = pty.openpty()
        process = subprocess.Popen(
            [SCRIPT, "--http-shutdown", "--server-info", str(info)],
            stdin=slave,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=pythonEnv(),
        )
        os.close(slave)
        self.addCleanup(os.close, master)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        assert process.stderr is not None
        line = process.stderr.readline()
        self.assertIn(b"waiting for the API key on stdin", line)
        os.write(master, DEFAULT_KEY + b"\n")
        deadline = time.monotonic() + 30
        while not info.exists() and time.monotonic() < deadline:
            select.select([], [], [], 0.05)
        self.assertTrue(info.exists(), "the proxy did not start")
        echoed = b""
        while select.select([master], [], [], 0.2)[0]:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            echoed += chunk
        self.assertNotIn(DEFAULT_KEY, echoed)
        import json

        port = json.loads(info.read_text())["port"]
        from tests.support import http

        response = parseResponse(http.rawExchange(port, http.buildRequest("GET", "/shutdown")))
        self.assertEqual(response.status, 200)
        self.assertEqual(process.wait(30), 0)
