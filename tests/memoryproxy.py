# -*- test-case-name: tests.test_front -*-
"""
An in-memory proxy for unit tests: the real L{StrictSite} on a C{StringTransport}
client connection, and the fake upstream's resource (L{tests.fakeupstream}, the same one
the process serves) behind treq's in-memory agent. By default the test answers each
upstream request itself (C{upstreamRequests}); a reply spec queued on C{upstream} plays
on the fake clock instead.

Nothing touches the global reactor or a socket; time is a L{MemoryReactorClock}.
"""

from __future__ import annotations

from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.http import Request
from twisted.web.iweb import IAgent
from zope.interface import implementer

from responses_proxy.bridge.profiles import DEFAULT_PROFILE, Profile
from responses_proxy.build import buildService
from responses_proxy.config import Limits, ProxyConfig
from responses_proxy.keyfile import AuthorizationHeader
from responses_proxy.web.front import StrictSite
from responses_proxy.web.timers import Clock
from tests.fakeupstream import FakeState, UpstreamResource
from tests.support.wire import RawResponse, parseResponse

KEY = b"sk-UNITTESTKEY0123456789abcdef"
UPSTREAM_URL = "http://upstream.test/v1/responses?api-version=1"
BRIDGE_URL = "http://upstream.test/v1/chat/completions"


# In memory the test itself plays the upstream: each request is recorded and left open.
LEAVE_OPEN = {"never_respond": True}


def upstreamBody(request: Request) -> bytes:
    """
    The body the upstream received with C{request}.
    """
    request.content.seek(0)
    return request.content.read()


@implementer(IAgent)
class CapturingAgent:
    """
    An agent that reads each request body as bytes and never answers.

    @ivar bodies: the bodies read so far.
    """

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def request(
        self, method: bytes, uri: bytes, headers: Any = None, bodyProducer: Any = None
    ) -> Deferred[Any]:
        consumer = _BytesConsumer()
        if bodyProducer is not None:
            bodyProducer.startProducing(consumer).addCallback(
                lambda _: self.bodies.append(b"".join(consumer.parts))
            )
        return Deferred()


class _BytesConsumer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)


class ClientConnection:
    """
    One client connection to the proxy, speaking raw bytes.
    """

    def __init__(self, site: StrictSite) -> None:
        self.channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        )
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def received(self) -> bytes:
        return self.transport.value()

    def response(self) -> RawResponse:
        """
        The first response received so far, parsed as the socket tests parse theirs (a
        body not yet ended is C{complete=False}).
        """
        return parseResponse(self.transport.value())

    def disconnect(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.transport.loseConnection()
        self.channel.connectionLost(Failure(ConnectionDone()))
        # As a TCP transport does once its connection is lost: it lets go of the
        # protocol it was producing for.
        self.transport.producer = None


class MemoryProxy:
    """
    The proxy built by the production wiring (L{buildService}) on a fake reactor, with
    treq's in-memory agent for the upstream.

    @ivar stopped: how often the service asked the reactor to stop.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        httpShutdown: bool = False,
        agent: Any = None,
        bridge: bool = False,
        profile: Profile = DEFAULT_PROFILE,
    ) -> None:
        self.clock = MemoryReactorClock()
        self._wallSteps = 0.0
        self.limits = limits or Limits()
        self.upstream = FakeState(self.clock)
        self.upstream.default = dict(LEAVE_OPEN)
        self.agent = (
            agent if agent is not None else RequestTraversalAgent(UpstreamResource(self.upstream))
        )
        self.authorization = AuthorizationHeader(b"Bearer " + KEY, locked=False)
        config = ProxyConfig(
            upstreamURL=BRIDGE_URL if bridge else UPSTREAM_URL,
            bridge=bridge,
            httpShutdown=httpShutdown,
            limits=self.limits,
            profile=profile,
        )
        self.service = buildService(
            self.clock,
            config,
            self.authorization,
            clock=Clock(self.clock, self._monotonic),
            agent=self.agent,
        )
        # Adopting the bound socket into the fake reactor closes the real one.
        self.service.listening.startService()
        self.site: StrictSite = self.service.site

    def _monotonic(self) -> float:
        return self.clock.seconds() - self._wallSteps

    def stepWall(self, seconds: float) -> None:
        """
        The wall clock (which Twisted's timers follow) jumps; no real time passes, so the
        monotonic clock stays put.
        """
        self._wallSteps += seconds
        self.clock.advance(seconds)

    @property
    def upstreamRequests(self) -> list[Request]:
        """
        The requests the fake upstream received, open for the test to answer (unless a
        reply spec was queued on C{upstream}).
        """
        return [record.request for record in self.upstream.records]

    @property
    def stopped(self) -> int:
        return 1 if self.clock.hasStopped else 0

    def connect(self) -> ClientConnection:
        return ClientConnection(self.site)

    def pump(self, rounds: int = 5) -> None:
        """
        Let queued work run: the body producer's cooperator and the in-memory upstream.
        """
        for _ in range(rounds):
            self.clock.advance(0)
            if isinstance(self.agent, RequestTraversalAgent):
                self.agent.flush()


def request(
    method: bytes = b"POST",
    target: bytes = b"/v1/responses",
    body: bytes = b'{"model":"m","stream":true}',
    headers: list[tuple[bytes, bytes]] | None = None,
    host: bytes | None = b"127.0.0.1:8080",
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """
    Raw request bytes; C{Content-Length} is added for a body unless given.
    """
    lines = [method + b" " + target + b" " + version]
    if host is not None:
        lines.append(b"Host: " + host)
    given = [name.lower() for name, _ in headers or []]
    for name, value in headers or []:
        lines.append(name + b": " + value)
    if body and b"content-length" not in given and b"transfer-encoding" not in given:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
