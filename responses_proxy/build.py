# -*- test-case-name: tests.test_tap -*-
"""
The one place the proxy is assembled, for twistd, the console script and the in-memory
tests alike.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.error import ReactorNotRunning
from twisted.web.iweb import IAgent

from responses_proxy import hardening
from responses_proxy.config import ProxyConfig, StartupError
from responses_proxy.dump import Dumper
from responses_proxy.keyfile import AuthorizationHeader
from responses_proxy.redact import StreamRedactor
from responses_proxy.web.exchange import Upstream
from responses_proxy.web.front import StrictSite, buildRoot
from responses_proxy.web.service import (
    KeyCustodyService,
    ListeningService,
    PoolService,
    ProxyService,
    StoreService,
    bindLoopback,
    checkServerInfoWritable,
)
from responses_proxy.web.shutdown import ShutdownResource
from responses_proxy.web.timers import Clock
from responses_proxy.web.upstream import UpstreamClient, makeAgent


def _openDumper(config: ProxyConfig, authorization: AuthorizationHeader) -> Dumper | None:
    if config.dumpDir is None:
        return None
    try:
        return Dumper(config.dumpDir, StreamRedactor(authorization.key).redact)
    except OSError as e:
        raise StartupError(f"cannot use --dump-dir {config.dumpDir}: {e.strerror or e}") from None


def buildService(
    reactor: Any,
    config: ProxyConfig,
    authorization: AuthorizationHeader,
    *,
    clock: Clock | None = None,
    agent: IAgent | None = None,
) -> ProxyService:
    """
    Build the proxy's service tree: check what can fail before binding, bind the port.

    @param reactor: the reactor it runs on (it adopts the bound socket).
    @param clock: the timers' clock; the reactor with the monotonic clock by default.
    @param agent: the upstream agent; by default an C{Agent} on a pool the service owns
        (in-memory tests pass treq's C{RequestTraversalAgent}).
    @raise StartupError: the port cannot be bound, the server-info file or the dump
        directory cannot be written.
    """
    clock = clock if clock is not None else Clock(reactor)
    if config.serverInfo is not None:
        checkServerInfoWritable(config.serverInfo)
    dumper = _openDumper(config, authorization)
    others: list[Service] = [KeyCustodyService(authorization)]
    if agent is None:
        agent, pool = makeAgent(clock, config.limits.connectTimeout)
        others.append(PoolService(pool))
    upstream = Upstream(
        clock=clock,
        client=UpstreamClient(agent, clock),
        url=config.upstreamURL,
        authorization=authorization,
        limits=config.limits,
        dumper=dumper,
    )
    if config.bridge:
        from responses_proxy.web.bridge import BridgeLeaf
        from responses_proxy.web.store import openStore

        store = openStore(config, reactor)
        others.append(StoreService(store))
        leaf: Any = BridgeLeaf(upstream, store, config.profile)
    else:
        from responses_proxy.web.passthrough import PassThroughLeaf

        leaf = PassThroughLeaf(upstream)
    shutdown = ShutdownResource(clock, lambda: _stop(reactor)) if config.httpShutdown else None
    site = StrictSite(buildRoot(leaf, shutdown), config.limits, clock, config.httpShutdown)
    hardening.raiseFileLimit()
    listening = ListeningService(reactor, bindLoopback(config.port), site, config.serverInfo)
    return ProxyService(site, listening, *others)


def _stop(reactor: Any) -> None:
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass  # already stopping (a signal, or a second /shutdown)
