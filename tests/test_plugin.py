"""
The twistd plugin: discovery, packaging, and C{twistd responses-proxy} in the foreground
and daemonized with a pidfile, started from the installed package.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support import http
from tests.support.fake import FakeUpstream
from tests.support.procs import REPO, ManagedProcess, makeTempDir, pythonEnv
from tests.support.proxy import DEFAULT_KEY, ProxyProcess, scriptPath


def installedEnv() -> dict[str, str]:
    """
    An environment that finds the project only through its installation (no
    C{PYTHONPATH} pointing at the checkout).
    """
    env = pythonEnv()
    env.pop("PYTHONPATH", None)
    return env


class DiscoveryTests(SynchronousTestCase):
    """
    twistd finds the plugin without importing the proxy or the reactor.
    """

    def test_pluginListed(self) -> None:
        """The tapname is among the IServiceMaker plugins."""
        from twisted.application.service import IServiceMaker
        from twisted.plugin import getPlugins

        makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
        self.assertIn("responses-proxy", makers)
        self.assertEqual(makers["responses-proxy"].module, "responses_proxy.tap")

    def test_listingImportsNeitherReactorNorProxy(self) -> None:
        """Listing plugins imports neither the reactor nor C{responses_proxy}."""
        code = (
            "import sys\n"
            "from twisted.plugin import getPlugins\n"
            "from twisted.application.service import IServiceMaker\n"
            "names = [p.tapname for p in getPlugins(IServiceMaker)]\n"
            "print('responses-proxy' in names, 'twisted.internet.reactor' in sys.modules,"
            " any(m.startswith('responses_proxy') for m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=installedEnv(),
            cwd=makeTempDir(self),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        self.assertEqual(out, ["True", "False", "False"])

    def test_twistdHelpFromInstalledPackage(self) -> None:
        """C{twistd --help} lists the plugin when run outside the checkout."""
        out = subprocess.run(
            [scriptPath("twistd"), "--help"],
            env=installedEnv(),
            cwd=makeTempDir(self),
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        self.assertIn("responses-proxy", out)


class WheelTests(SynchronousTestCase):
    """
    The wheel ships the plugin file and nothing that would break Twisted's own plugins.
    """

    def test_wheelContents(self) -> None:
        """Exactly our package and the plugin module; no twisted/__init__.py, no cache;
        installed on its own, twistd finds the plugin there."""
        out = makeTempDir(self)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "-q",
                "-w",
                str(out),
                str(REPO),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        [wheel] = list(out.glob("*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        self.assertIn("twisted/plugins/responses_proxy_plugin.py", names)
        self.assertIn("responses_proxy/tap.py", names)
        self.assertIn("responses_proxy/bridge/stream.py", names)
        for bad in [
            "twisted/__init__.py",
            "twisted/plugins/__init__.py",
            "twisted/plugins/dropin.cache",
        ]:
            self.assertNotIn(bad, names)
        self.assertFalse([n for n in names if n.startswith("tests/")])
        target = makeTempDir(self) / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--target",
                str(target),
                str(wheel),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
        code = (
            "import twisted.plugins, sys\n"
            "from twisted.plugin import getPlugins\n"
            "from twisted.application.service import IServiceMaker\n"
            "print(any(p.endswith('site/twisted/plugins') for p in twisted.plugins.__path__))\n"
            "print([p.tapname for p in getPlugins(IServiceMaker)].count('responses-proxy'))\n"
            "import responses_proxy; print(responses_proxy.__file__.startswith(sys.argv[1]))\n"
        )
        env = installedEnv()
        env["PYTHONPATH"] = str(target)
        lines = subprocess.run(
            [sys.executable, "-c", code, str(target)],
            env=env,
            cwd=makeTempDir(self),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        self.assertEqual(lines[0], "True")
        self.assertGreaterEqual(int(lines[1]), 1)
        self.assertEqual(lines[2], "True")


class TwistdTests(SynchronousTestCase):
    """
    C{twistd responses-proxy}, foreground and daemonized.
    """

    def fake(self) -> FakeUpstream:
        fake = FakeUpstream(self).start()
        fake.setDefault({"body": '{"ok": true}'})
        return fake

    def test_foreground(self) -> None:
        """C{twistd -n} serves, and /shutdown exits 0 and removes the pidfile."""
        fake = self.fake()
        proxy = ProxyProcess(
            self, entry="twistd", upstreamURL=fake.url(), env=installedEnv()
        ).start()
        self.assertTrue(proxy.pidfile.exists())
        resp = http.post(proxy.port, body=b"{}")
        self.assertEqual(resp.status, 200)
        [req] = fake.requests()
        self.assertEqual(req.headerValues("authorization"), ["Bearer " + DEFAULT_KEY.decode()])
        self.assertEqual(proxy.shutdown(), 0)
        self.assertFalse(proxy.pidfile.exists())

    def test_asyncioReactor(self) -> None:
        """The plugin works with C{--reactor=asyncio} (it never imports a reactor itself)."""
        fake = self.fake()
        proxy = ProxyProcess(
            self,
            entry="twistd",
            upstreamURL=fake.url(),
            env=installedEnv(),
            extraArgs=(),
        )
        argv = proxy.process.argv
        proxy.process.argv = argv[:1] + ["--reactor=asyncio"] + argv[1:]
        proxy.start()
        self.assertEqual(http.post(proxy.port, body=b"{}").status, 200)
        self.assertEqual(proxy.shutdown(), 0)

    def test_daemonWithPidfile(self) -> None:
        """Daemonized: the key is read before forking, the server-info pid is the daemon's
        (and the pidfile's), the file is 0644 despite twistd's 0077 umask, and /shutdown
        stops it and removes the pidfile."""
        fake = self.fake()
        proxy = ProxyProcess(
            self, entry="twistd", daemon=True, upstreamURL=fake.url(), env=installedEnv()
        ).start()
        daemonPid = proxy.info["pid"]
        self.assertEqual(int(proxy.pidfile.read_text().strip()), daemonPid)
        self.assertNotEqual(daemonPid, proxy.process.pid)
        self.assertEqual(proxy.process.returncode, 0)
        self.assertEqual(stat.S_IMODE(os.stat(proxy.serverInfo).st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(os.stat(proxy.serverInfo.parent).st_mode), 0o755)
        self.assertEqual(http.post(proxy.port, body=b"{}").status, 200)
        [req] = fake.requests()
        self.assertEqual(req.headerValues("authorization"), ["Bearer " + DEFAULT_KEY.decode()])
        self.assertEqual(proxy.shutdown(), 0)
        self.assertFalse(proxy.pidfile.exists())
        log = proxy.logfile.read_text()
        self.assertIn("Main loop terminated", log)
        self.assertNotIn(DEFAULT_KEY.decode(), log)

    def startupFailure(self, stdin: bytes, args: list[str], daemon: bool) -> tuple[int, str, Path]:
        directory = makeTempDir(self)
        info = directory / "info.json"
        pidfile = directory / "twistd.pid"
        head = ["--pidfile", str(pidfile)]
        head += ["--logfile", str(directory / "log")] if daemon else ["-n"]
        process = ManagedProcess(
            [scriptPath("twistd"), *head, "responses-proxy", "--server-info", str(info), *args],
            env=installedEnv(),
            stdin=stdin,
            cwd=directory,
            directory=directory,
            name="twistd",
        ).start()
        self.addCleanup(process.stop)
        code = process.wait(30)
        self.assertFalse(info.exists())
        self.assertFalse(pidfile.exists())
        return code, process.stderr().decode(), directory

    def test_startupErrorsAreOneLine(self) -> None:
        """A bad key or URL under twistd: one line, no usage text, non-zero, nothing left."""
        for daemon in (False, True):
            code, err, _ = self.startupFailure(b"sk-bad!\n", [], daemon)
            self.assertNotEqual(code, 0)
            lines = [line for line in err.splitlines() if line.strip()]
            self.assertEqual(len(lines), 1, err)
            self.assertIn("may only contain", lines[0])
            self.assertNotIn("Usage:", err)
            code, err, _ = self.startupFailure(b"", [], daemon)
            self.assertIn("must be provided via stdin", err)
            code, err, _ = self.startupFailure(
                b"sk-good\n", ["--upstream-url", "gopher://x"], daemon
            )
            self.assertNotEqual(code, 0)
            self.assertIn("scheme", err)

    def test_portInUseBeforeDaemonizing(self) -> None:
        """A port in use fails in the launcher, before any daemon exists."""
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        self.addCleanup(holder.close)
        port = holder.getsockname()[1]
        code, err, directory = self.startupFailure(b"sk-good\n", ["--port", str(port)], True)
        self.assertEqual(code, 1)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", err)
        log = directory / "log"
        self.assertFalse(log.exists() and "Main loop" in log.read_text())


class ConsoleLogTests(SynchronousTestCase):
    """
    The console script's log lines read as C{textFileLogObserver}'s.
    """

    def test_linesAsTwistedFormatsThem(self) -> None:
        """Within a second, across seconds and without a time, each line is what
        C{formatEventAsClassicLogText} makes of the event."""
        from twisted.logger import LogLevel, formatEventAsClassicLogText

        from responses_proxy.cli import _SecondsFormatter

        formatter = _SecondsFormatter()
        base = 1_760_000_000.25
        events = [
            {"log_format": "{line}", "line": "POST /v1/responses 200 459B 0.001s upstream=200",
             "log_namespace": "responses_proxy", "log_level": LogLevel.info},
            {"log_format": "{line}", "line": "two\nlines", "log_level": LogLevel.warn},
            {"log_format": "{line}", "line": "a system", "log_system": "sys",
             "log_level": LogLevel.info},
            {"log_format": "{line}", "line": "no level"},
            {"log_format": "{line}", "line": 42, "log_level": LogLevel.info},
            {"log_format": "{n} {what}", "n": 3, "what": "things",
             "log_namespace": "responses_proxy", "log_level": LogLevel.info},
        ]
        for when in (base, base + 0.5, base + 0.75, base + 1.0, base + 3601.9, None):
            for event in events:
                event = dict(event, log_time=when)
                self.assertEqual(formatter(event), formatEventAsClassicLogText(event), event)
