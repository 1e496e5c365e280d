"""
Tests for L{responses_proxy.tap} and L{responses_proxy.build}: the command line and the one
wiring, in memory (no key is read and no reactor runs).
"""

from __future__ import annotations

import json
import os

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.config import Limits, ProxyConfig, buildConfig
from responses_proxy.keyfile import AuthorizationHeader
from responses_proxy.tap import Options, makeService
from responses_proxy.web.bridge import BridgeLeaf
from responses_proxy.web.front import StrictSite
from responses_proxy.web.passthrough import PassThroughLeaf
from responses_proxy.web.service import (
    KeyCustodyService,
    ListeningService,
    PoolService,
    writeServerInfo,
)
from responses_proxy.web.shutdown import ShutdownResource
from tests.support.procs import makeTempDir

KEY = b"Bearer sk-TAPTESTKEY0123456789"


def options(config: ProxyConfig) -> Options:
    """Options as postOptions leaves them, without hardening this process or reading fd 0."""
    opts = Options()
    opts["config"] = config
    opts["authorization"] = AuthorizationHeader(KEY, locked=False)
    return opts


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService} builds the whole service tree on the reactor it is given.
    """

    def build(self, **kwargs: object) -> tuple[MemoryReactorClock, object]:
        reactor = MemoryReactorClock()
        service = makeService(options(ProxyConfig(**kwargs)), reactor)  # type: ignore[arg-type]
        self.addCleanup(service.listening.stopService)
        return reactor, service

    def test_passThroughTree(self) -> None:
        """Pass-through mode: key custody, the pool and the listening port, in start order;
        the site serves the pass-through leaf at /v1/responses and no /shutdown."""
        _, service = self.build()
        kinds = [type(child) for child in service]
        self.assertEqual(kinds, [KeyCustodyService, PoolService, ListeningService])
        site = service.site
        self.assertIsInstance(site, StrictSite)
        v1 = site.resource.children[b"v1"]
        self.assertIsInstance(v1.children[b"responses"], PassThroughLeaf)
        self.assertNotIn(b"shutdown", site.resource.children)
        self.assertFalse(site.shutdownEnabled)

    def test_bridgeAndShutdown(self) -> None:
        """Bridge mode with --http-shutdown: the bridge leaf and the shutdown resource."""
        _, service = self.build(
            bridge=True, httpShutdown=True, upstreamURL="http://127.0.0.1:1/v1/chat/completions"
        )
        root = service.site.resource
        self.assertIsInstance(root.children[b"v1"].children[b"responses"], BridgeLeaf)
        self.assertIsInstance(root.children[b"shutdown"], ShutdownResource)
        self.assertTrue(service.site.shutdownEnabled)

    def test_limitsReachTheSite(self) -> None:
        """The configured limits are the ones the site's channels use."""
        limits = Limits(headerTimeout=3)
        _, service = self.build(limits=limits)
        self.assertIs(service.site.limits, limits)

    def test_startAdoptsSocketAndWritesServerInfo(self) -> None:
        """Starting the listening service hands the bound socket to the reactor and writes
        the server-info file with this process's pid."""
        info = os.path.join(self.mktemp(), "sub", "info.json")
        reactor, service = self.build(serverInfo=info)
        port = service.listening.boundPort
        self.assertGreater(port, 0)
        service.listening.startService()
        [(fileno, _, factory)] = reactor.adoptedPorts
        self.assertIs(factory, service.site)
        with open(info) as f:
            document = json.loads(f.read())
        # The fake reactor reports its own port; the pid is this process.
        self.assertEqual(document["pid"], os.getpid())

    def test_startupErrorExits(self) -> None:
        """An unwritable server-info path ends the process with one line, before binding."""
        blocker = self.mktemp()
        with open(blocker, "w") as f:
            f.write("not a directory")
        config = buildConfig(
            port=None,
            serverInfo=os.path.join(blocker, "info.json"),
            httpShutdown=False,
            upstreamURL=None,
            bridge=False,
            dumpDir=None,
        )
        with self.assertRaises(SystemExit) as caught:
            makeService(options(config), MemoryReactorClock())
        self.assertEqual(caught.exception.code, 1)


class ServerInfoTests(SynchronousTestCase):
    """
    L{writeServerInfo}, the one server-info writer (the fake upstream uses it too).
    """

    def test_fieldsAndMode(self) -> None:
        """One JSON line with the port, the pid and any extra field, mode 0644; a second
        write replaces the first whole."""
        path = os.path.join(makeTempDir(self), "a", "info.json")
        writeServerInfo(path, 8080, 42, control_port=9090)
        with open(path) as f:
            self.assertEqual(f.read(), '{"port": 8080, "pid": 42, "control_port": 9090}\n')
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)
        writeServerInfo(path, 1, 2)
        with open(path) as f:
            self.assertEqual(json.loads(f.read()), {"port": 1, "pid": 2})
        self.assertEqual(os.listdir(os.path.dirname(path)), ["info.json"])


class OptionsTests(SynchronousTestCase):
    """
    The command line's own text.
    """

    def test_usageNamesTheCommand(self) -> None:
        """C{--help} starts with a usage line naming the console script."""
        self.assertTrue(
            Options().getSynopsis().startswith("Usage: codex-responses-api-proxy [--port PORT]")
        )

    def test_helpAndVersionFlags(self) -> None:
        """C{-h} is C{--help}; C{--version} exists (the package's, not Twisted's)."""
        text = str(Options())
        self.assertIn("-h, --help", text)
        self.assertIn("--version", text)
