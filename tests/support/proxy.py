# -*- test-case-name: tests.test_plugin -*-
"""
The proxy as a real process for integration tests, through any of its entry points.

    proxy = ProxyProcess(self, upstreamURL=fake.url()).start()
    resp = http.post(proxy.port, "/v1/responses", {...})

The key goes in on stdin, as a user would pipe it; the proxy is stopped (SIGTERM, then
SIGKILL) when the test ends.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support import http
from tests.support.procs import (
    PYTHON,
    ManagedProcess,
    ProcessFixture,
    makeTempDir,
    pythonEnv,
    waitPidGone,
)

BIN = Path(sys.executable).parent
DEFAULT_KEY = b"sk-proxytest-0123456789ABCDEFabcdef"


def scriptPath(name: str) -> str:
    """
    A console script installed next to the interpreter running the tests.
    """
    return str(BIN / name)


class ProxyProcess:
    """
    One proxy process.

    @ivar port: the port it listens on (from its server-info file).
    @ivar info: the decoded server-info file.
    @ivar process: the L{ManagedProcess}.
    """

    def __init__(
        self,
        testCase: Any,
        *,
        key: bytes = DEFAULT_KEY,
        stdin: bytes | None = None,
        upstreamURL: str | None = None,
        bridge: bool = False,
        httpShutdown: bool = True,
        dumpDir: str | None = None,
        tuning: str | None = None,
        entry: str = "module",
        daemon: bool = False,
        extraArgs: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        """
        @param entry: C{"module"} (C{python -m responses_proxy}), C{"script"} (the
            installed C{codex-responses-api-proxy}) or C{"twistd"} (the plugin).
        @param daemon: with C{"twistd"}, daemonize with a pidfile instead of C{-n}.
        @param stdin: exact standard input (default: the key and a newline).
        """
        self.testCase = testCase
        self.dir = makeTempDir(testCase, "proxy-")
        self.key = key
        self.serverInfo = self.dir / "info" / "server-info.json"
        self.pidfile = self.dir / "twistd.pid"
        self.logfile = self.dir / "twistd.log"
        args: list[str] = ["--server-info", str(self.serverInfo)]
        if upstreamURL is not None:
            args += ["--upstream-url", upstreamURL]
        if bridge:
            args.append("--bridge-to-chat")
        if httpShutdown:
            args.append("--http-shutdown")
        if dumpDir is not None:
            args += ["--dump-dir", dumpDir]
        if port is not None:
            args += ["--port", str(port)]
        args += list(extraArgs)
        if entry == "module":
            argv = [PYTHON, "-m", "responses_proxy", *args]
        elif entry == "script":
            argv = [scriptPath("codex-responses-api-proxy"), *args]
        elif entry == "twistd":
            if daemon:
                head = ["--pidfile", str(self.pidfile), "--logfile", str(self.logfile)]
            else:
                head = ["-n", "--pidfile", str(self.pidfile)]
            argv = [scriptPath("twistd"), *head, "responses-proxy", *args]
        else:
            raise ValueError(entry)
        environment = pythonEnv()
        environment.pop("CODEX_PROXY_TUNING", None)
        if tuning is not None:
            environment["CODEX_PROXY_TUNING"] = tuning
        if env:
            environment.update(env)
        self.process = ManagedProcess(
            argv,
            env=environment,
            stdin=key + b"\n" if stdin is None else stdin,
            cwd=self.dir,
            directory=self.dir,
            name="proxy",
        )
        self.port = 0
        self.info: dict[str, Any] = {}
        self.daemon = daemon

    def start(self, timeout: float = 20.0) -> ProxyProcess:
        """
        Start it and wait for its server-info file.
        """
        self.testCase.addCleanup(self.stop)
        self.process.start()
        if self.daemon:
            # The launcher exits at once; the daemon writes the file.
            self.process.wait(timeout)
            self.info = _waitForFile(self.serverInfo, timeout, self)
        else:
            self.info = self.process.waitForJSONFile(self.serverInfo, timeout)
        self.port = self.info["port"]
        return self

    def url(self, path: str = "/v1") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def shutdown(self, timeout: float = 15.0) -> int:
        """
        C{GET /shutdown} and wait for the process to exit; returns its status.
        """
        resp = http.get(self.port, "/shutdown")
        self.testCase.assertEqual(resp.status, 200)
        if self.daemon:
            # Not our child: its exit status is not ours to read; it must be gone.
            waitPidGone(int(self.info["pid"]), timeout, "the twistd daemon")
            return 0
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.daemon and self.info.get("pid"):
            try:
                os.kill(int(self.info["pid"]), 15)
            except ProcessLookupError:
                pass
        self.process.stop()

    def outputs(self) -> bytes:
        """
        Everything it printed, plus its log file if it has one.
        """
        data = self.process.stdout() + self.process.stderr()
        if self.logfile.exists():
            data += self.logfile.read_bytes()
        return data


def _waitForFile(path: Path, timeout: float, proxy: ProxyProcess) -> dict[str, Any]:
    """
    Wait for the daemon's server-info file (the launcher has exited, so there is no
    process of ours to wait on): a bounded poll.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        if text.endswith("\n"):
            return json.loads(text)
        time.sleep(0.01)
    raise AssertionError(f"no server-info file from the daemon: {proxy.outputs()[-2000:]!r}")


class SharedBridges:
    """
    One fake chat upstream and one proxy in bridge mode per tuning, shared by the tests of
    a module (L{ProcessFixture}: started by the first test that asks, restarted if found
    gone). The module calls L{stop} from C{tearDownModule}.
    """

    def __init__(self, chatPath: str = "/v1/chat/completions") -> None:
        self._chatPath = chatPath
        self._fixtures: dict[str | None, ProcessFixture[tuple[Any, ProxyProcess]]] = {}

    def acquire(self, tuning: str | None = None) -> tuple[Any, ProxyProcess]:
        """
        @return: the fake upstream (a L{tests.support.fake.FakeUpstream}) and the proxy for
            this tuning, started now if they are not running.
        """
        fixture = self._fixtures.get(tuning)
        if fixture is None:
            fixture = self._fixtures[tuning] = ProcessFixture(
                lambda owner: self._start(owner, tuning), _bothRunning
            )
        return fixture.acquire()

    def _start(self, owner: Any, tuning: str | None) -> tuple[Any, ProxyProcess]:
        from tests.support.fake import FakeUpstream

        fake = FakeUpstream(owner).start()
        proxy = ProxyProcess(
            owner, upstreamURL=fake.url(self._chatPath), bridge=True, tuning=tuning
        ).start()
        return fake, proxy

    def stop(self) -> None:
        """
        Stop every shared process.
        """
        for fixture in self._fixtures.values():
            fixture.stop()


def _bothRunning(started: tuple[Any, ProxyProcess]) -> bool:
    fake, proxy = started
    return fake.process is not None and fake.process.running() and proxy.process.running()


def failedStart(
    testCase: Any, stdin: bytes, args: Sequence[str], env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """
    Start C{python -m responses_proxy} with C{args} and a fresh port and server-info path,
    expecting a start-up error: it exits non-zero with one line on stderr, nothing on
    stdout, no server-info file and nothing listening.

    @return: the exit status and the line.
    """
    port = http.freePort()
    directory = makeTempDir(testCase)
    info = directory / "sub" / "info.json"
    process = ManagedProcess(
        [PYTHON, "-m", "responses_proxy", "--port", str(port), "--server-info", str(info)]
        + list(args),
        env=pythonEnv(dict(env) if env else None),
        stdin=stdin,
        directory=directory,
        name="proxy",
    ).start()
    testCase.addCleanup(process.stop)
    code = process.wait(20)
    testCase.assertNotEqual(code, 0)
    testCase.assertFalse(info.exists())
    testCase.assertFalse(http.listening(port))
    err = process.stderr().decode()
    lines = [line for line in err.splitlines() if line.strip()]
    testCase.assertEqual(len(lines), 1, err)
    testCase.assertEqual(process.stdout(), b"")
    return code, lines[0]
