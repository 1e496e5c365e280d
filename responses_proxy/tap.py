# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin's options and service, shared with the console script.

C{postOptions} runs before twistd daemonizes and closes stdin, so that is where the
process is hardened and the key is read. Start-up errors print one line and exit
(a L{usage.UsageError} would make twistd print the whole usage text).
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn, TextIO

from twisted.application.service import IService
from twisted.python import usage

from responses_proxy import hardening
from responses_proxy.config import TUNING_ENV, ProxyConfig, StartupError, buildConfig
from responses_proxy.keyfile import AuthorizationHeader, KeyReadError, readAuthorization

SYNOPSIS = (
    "[--port PORT] [--server-info FILE] [--http-shutdown] [--upstream-url URL] "
    "[--bridge-to-chat] [--dump-dir DIR] [--state-file FILE]"
)


def exitWithError(error: StartupError, stream: TextIO | None = None) -> NoReturn:
    """
    Print one line and exit with the error's status.
    """
    print(f"Error: {error}", file=stream if stream is not None else sys.stderr, flush=True)
    raise SystemExit(error.exitCode)


class Options(usage.Options):
    """
    The command line of both entry points.
    """

    synopsis = SYNOPSIS
    longdesc = (
        "Reads an API key from stdin and forwards exactly POST /v1/responses to the "
        "upstream with Authorization: Bearer <key>; everything else is 403."
    )
    optParameters = [
        ["port", None, None, "Port to bind on 127.0.0.1 (default: an ephemeral port)."],
        [
            "server-info",
            None,
            None,
            'Write {"port": <port>, "pid": <pid>} as one JSON line here once listening.',
        ],
        [
            "upstream-url",
            None,
            None,
            "URL to forward to (default https://api.openai.com/v1/responses).",
        ],
        ["dump-dir", None, None, "Write each request and response as JSON files here."],
        [
            "state-file",
            None,
            None,
            "Bridge: keep stored responses in this SQLite file, so previous_response_id "
            "and item_reference survive a restart (default: in memory).",
        ],
    ]
    optFlags = [
        ["http-shutdown", None, "Enable GET /shutdown to stop the proxy (exit code 0)."],
        [
            "bridge-to-chat",
            None,
            "Convert to and from a Chat Completions upstream (needs --upstream-url).",
        ],
    ]

    # Replaced in tests: the real ones harden this process and read fd 0.
    harden = staticmethod(hardening.hardenProcess)
    readKey = staticmethod(readAuthorization)
    stderr: TextIO | None = None

    def postOptions(self) -> None:
        try:
            self["config"] = buildConfig(
                port=self["port"],
                serverInfo=self["server-info"],
                httpShutdown=bool(self["http-shutdown"]),
                upstreamURL=self["upstream-url"],
                bridge=bool(self["bridge-to-chat"]),
                dumpDir=self["dump-dir"],
                tuning=os.environ.get(TUNING_ENV),
                stateFile=self["state-file"],
            )
            try:
                self.harden()
            except hardening.HardeningError as e:
                raise StartupError(str(e).removeprefix("ERROR: "), e.exitCode) from None
            try:
                self["authorization"] = self.readKey()
            except KeyReadError as e:
                raise StartupError(str(e)) from None
        except StartupError as e:
            exitWithError(e, self.stderr)


def buildService(
    reactor: Any, config: ProxyConfig, authorization: AuthorizationHeader, harden: bool = True
) -> IService:
    """
    Build the proxy's service tree for a reactor.

    @raise StartupError: the port cannot be bound, the server-info file or the dump
        directory cannot be written.
    """
    from twisted.web.client import Agent

    from responses_proxy.dump import Dumper
    from responses_proxy.redact import StreamRedactor
    from responses_proxy.relay import ResponsesResource, UpstreamClient
    from responses_proxy.resource import ShutdownResource, StrictSite, buildRoot
    from responses_proxy.service import (
        KeyCustodyService,
        ListeningService,
        PoolService,
        ProxyService,
        bindLoopback,
        checkServerInfoWritable,
        makePool,
        raiseFileLimit,
    )

    if config.serverInfo is not None:
        checkServerInfoWritable(config.serverInfo)
    dumper = None
    if config.dumpDir is not None:
        try:
            dumper = Dumper(config.dumpDir, StreamRedactor(authorization.key).redact)
        except OSError as e:
            raise StartupError(
                f"cannot use --dump-dir {config.dumpDir}: {e.strerror or e}"
            ) from None

    pool = makePool(reactor)
    agent = Agent(reactor, connectTimeout=config.limits.connectTimeout, pool=pool)
    upstream = UpstreamClient(agent, reactor)
    leafType: Any = ResponsesResource
    if config.bridge:
        from responses_proxy.bridgeresource import BridgeResource

        leafType = BridgeResource
    leaf = leafType(
        reactor=reactor,
        upstream=upstream,
        upstreamURL=config.upstreamURL,
        authorization=authorization,
        limits=config.limits,
        dumper=dumper,
    )
    shutdown = None
    if config.httpShutdown:
        shutdown = ShutdownResource(reactor, lambda: _stopReactor(reactor))
    site = StrictSite(buildRoot(leaf, shutdown), config.limits, reactor=reactor)

    raiseFileLimit()
    sock = bindLoopback(config.port)
    parent = ProxyService()
    KeyCustodyService(authorization, harden=harden).setServiceParent(parent)
    listening = ListeningService(reactor, sock, site, config.serverInfo)
    listening.setServiceParent(parent)
    parent.listening = listening
    PoolService(pool).setServiceParent(parent)
    return parent


def _stopReactor(reactor: Any) -> None:
    if getattr(reactor, "running", True):
        reactor.stop()


def makeService(options: Options) -> IService:
    """
    twistd's entry point: the reactor is installed by now, so import it here.
    """
    from twisted.internet import reactor

    config: ProxyConfig = options["config"]
    try:
        service = buildService(reactor, config, options["authorization"])
    except StartupError as e:
        exitWithError(e, options.stderr)
    for warning in config.warnings:
        print(f"warning: {warning}", file=options.stderr or sys.stderr, flush=True)
    return service
