# -*- test-case-name: tests.test_sendnow -*-
"""
A real process around L{responses_proxy.web._sendnow}, for L{tests.test_sendnow}: a real
reactor and real connections on 127.0.0.1, plain TCP and TLS.

C{python -m tests.sendnowprobe DIRECTORY} prints one JSON object: for each case, whether
the peer's socket held the written bytes before the callback that wrote them returned
(the reactor had no turn in between). C{DIRECTORY} receives the test certificates.

  - C{tcp}, C{tcpWrapped} (through an object standing for a wrapping transport),
    C{tcpControl} (no C{sendNow}: Twisted only queues);
  - C{tls}, C{tlsControl}: Twisted's TLS transport, which gathers small writes for the
    next reactor turn.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from responses_proxy.web._sendnow import sendNow
from tests.support.fake import makeCAAndLeaf

_TIMEOUT = 10.0


def _peek(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


class _Wrapper:
    """Stands for a wrapping transport: the TCP transport is its C{transport}."""

    def __init__(self, transport: object) -> None:
        self.transport = transport


class _Sender(protocol.Protocol):
    """Writes C{pong} when the peer's C{ping} arrives, then reports whether the peer
    could already see it."""

    def __init__(self, peer: socket.socket, how: str, done: defer.Deferred[bool]) -> None:
        self.peer = peer
        self.how = how
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(b"pong")
        if self.how == "direct":
            sendNow(self.transport)
        elif self.how == "wrapped":
            sendNow(_Wrapper(self.transport))
        arrived = _peek(self.peer)
        self.transport.loseConnection()
        if not self.done.called:
            self.done.callback(arrived)


async def _tcp(reactor: Any, how: str) -> bool:
    done: defer.Deferred[bool] = defer.Deferred()
    peer = socket.socket()
    factory = protocol.Factory.forProtocol(lambda: _Sender(peer, how, done))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    try:
        peer.connect(("127.0.0.1", port.getHost().port))
        peer.sendall(b"ping")
        return await done
    finally:
        peer.close()
        await port.stopListening()


class _TLSPeer:
    """A TLS server in a thread (Python's ssl), so what has reached its socket can be
    seen while the reactor is still inside a callback."""

    def __init__(self, directory: Path) -> None:
        self.files = makeCAAndLeaf(directory)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(_TIMEOUT)
        self.port = self.listener.getsockname()[1]
        self.handshaken = threading.Event()
        self.raw: socket.socket | None = None
        self._tls: ssl.SSLSocket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.files.cert), str(self.files.key))
        conn, _ = self.listener.accept()
        conn.settimeout(_TIMEOUT)
        self._tls = context.wrap_socket(conn, server_side=True)
        # The same connection seen below TLS: what has arrived, without taking it.
        self.raw = socket.socket(fileno=os.dup(self._tls.fileno()))
        self.handshaken.set()

    def close(self) -> None:
        self._thread.join(_TIMEOUT)
        for sock in (self.raw, self._tls, self.listener):
            if sock is not None:
                sock.close()


@implementer(IHandshakeListener)
class _TLSClient(protocol.Protocol):
    def __init__(self) -> None:
        self.handshakeDone: defer.Deferred[None] = defer.Deferred()

    def handshakeCompleted(self) -> None:
        self.handshakeDone.callback(None)


async def _tls(reactor: Any, directory: Path, send: bool) -> bool:
    peer = _TLSPeer(directory)
    client = _TLSClient()
    try:
        options = optionsForClientTLS(
            "localhost", trustRoot=Certificate.loadPEM(peer.files.ca.read_bytes())
        )
        endpoint = wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", peer.port))
        proto = await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        await client.handshakeDone
        if not await deferToThread(peer.handshaken.wait, _TIMEOUT):
            raise RuntimeError("the TLS peer did not finish its handshake")
        assert peer.raw is not None
        if _peek(peer.raw):
            raise RuntimeError("bytes arrived before anything was written")
        proto.transport.write(b"ping")
        if send:
            sendNow(proto.transport)
        arrived = _peek(peer.raw)
        proto.transport.abortConnection()
        return arrived
    finally:
        peer.close()


async def _probe(reactor: Any, directory: Path) -> dict[str, bool]:
    return {
        "tcp": await _tcp(reactor, "direct"),
        "tcpWrapped": await _tcp(reactor, "wrapped"),
        "tcpControl": await _tcp(reactor, "none"),
        "tls": await _tls(reactor, directory / "a", True),
        "tlsControl": await _tls(reactor, directory / "b", False),
    }


def main(reactor: Any, directory: str) -> defer.Deferred[None]:
    root = Path(directory)
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "b").mkdir(parents=True, exist_ok=True)
    d = defer.Deferred.fromCoroutine(_probe(reactor, root))
    d.addCallback(lambda result: print(json.dumps(result), flush=True))
    return d


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
