# -*- test-case-name: tests.test_service -*-
"""
The services both entry points run: key custody, the listening port with its
server-info file, and the upstream connection pool.

The socket is bound before the service starts (so a port in use is a start-up error
that surfaces before twistd daemonizes) and handed to the reactor when the service
starts, in the process that will serve (so the server-info pid is the daemon's).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import socket
import tempfile
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory

from responses_proxy import hardening
from responses_proxy.config import StartupError
from responses_proxy.headers import connectionTokens
from responses_proxy.keyfile import AuthorizationHeader, lockBytes

_log = Logger(namespace="responses_proxy")


def raiseFileLimit() -> int:
    """
    Raise the soft limit on open files to the hard limit (best effort): every client
    connection and every upstream connection is a descriptor, and many idle clients
    must not starve a real request.

    @return: the soft limit now in force.
    """
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = max(soft, 65536)
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (OSError, ValueError):
        return -1


def bindLoopback(port: int) -> socket.socket:
    """
    Bind and listen on C{127.0.0.1:port} (0 = ephemeral); never another address.

    @raise StartupError: the port cannot be used.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise StartupError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e}") from None
    return sock


def _makeParents(path: str) -> None:
    """
    Create missing parent directories as 0755 whatever the umask (twistd daemonizes
    with umask 0077, and the unprivileged user must be able to reach the file).
    """
    parent = os.path.dirname(path)
    missing: list[str] = []
    while parent and not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(directory)
        os.chmod(directory, 0o755)


def checkServerInfoWritable(path: str) -> None:
    """
    Fail before binding if the server-info file could not be written.

    @raise StartupError: the directory cannot be created or written to.
    """
    try:
        _makeParents(path)
        fd, probe = tempfile.mkstemp(prefix=".server-info-", dir=os.path.dirname(path) or ".")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StartupError(f"cannot write --server-info {path}: {e.strerror or e}") from None


def writeServerInfo(path: str, port: int, pid: int) -> None:
    """
    Write C{{"port": P, "pid": N}} and a newline atomically, mode 0644.
    """
    _makeParents(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".server-info-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"port": port, "pid": pid}) + "\n")
            f.flush()
            os.fchmod(f.fileno(), 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class ListeningService(Service):
    """
    Hands the pre-bound socket to the reactor, then writes the server-info file.

    twistd calls L{privilegedStartService} (after daemonizing) and then
    L{startService}; C{twist} calls only the latter, so either adopts the socket once.
    """

    def __init__(
        self, reactor: Any, sock: socket.socket, factory: Any, serverInfo: str | None
    ) -> None:
        self._reactor = reactor
        self._socket: socket.socket | None = sock
        self._factory = factory
        self._serverInfo = serverInfo
        self.port: IListeningPort | None = None

    @property
    def boundPort(self) -> int:
        if self.port is not None:
            return self.port.getHost().port
        assert self._socket is not None
        return self._socket.getsockname()[1]

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._adopt()

    def startService(self) -> None:
        super().startService()
        self._adopt()

    def _adopt(self) -> None:
        if self.port is not None or self._socket is None:
            return
        sock, self._socket = self._socket, None
        try:
            self.port = self._reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, self._factory)
        finally:
            sock.close()
        if self._serverInfo is not None:
            writeServerInfo(self._serverInfo, self.port.getHost().port, os.getpid())

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None


class KeyCustodyService(Service):
    """
    Re-apply what C{fork} and a uid change undo: memory locks are not inherited by
    the daemon, and a uid/gid change resets the dumpable flag.
    """

    def __init__(self, authorization: AuthorizationHeader, harden: bool = True) -> None:
        self._authorization = authorization
        self._harden = harden

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        # Locks are per process: after twistd's fork the daemon must lock again.
        self._authorization.locked = lockBytes(self._authorization.value)
        if not self._authorization.locked:
            _log.warn("could not mlock the API key (continuing without the lock)")

    def startService(self) -> None:
        super().startService()
        if self._harden:
            hardening.setNonDumpable()


class _ConnectionAwareProtocol(HTTP11ClientProtocol):
    """
    Tells the relay which headers the upstream's C{Connection} header lists.

    Twisted's response parser keeps connection-control headers (C{Connection}
    itself among them) out of C{response.headers}, so without this the relay
    could not drop the hop-by-hop headers C{Connection} names.
    """

    def request(self, request: Any) -> Deferred[Any]:
        d = super().request(request)
        parser = self._parser

        def note(response: Any) -> Any:
            if parser is not None:
                response.connectionTokens = connectionTokens(parser.connHeaders.getAllRawHeaders())
            return response

        return d.addCallback(note)


class _QuietClientFactory(_HTTP11ClientFactory):
    """
    The pool's connection factory: no "Starting factory" log noise, and protocols
    that report the C{Connection} header's tokens.
    """

    noisy = False

    def buildProtocol(self, addr: Any) -> HTTP11ClientProtocol:
        return _ConnectionAwareProtocol(self._quiescentCallback)


class UpstreamPool(HTTPConnectionPool):
    """
    The upstream connection pool: persistent connections, dropped a little before a
    typical server's keep-alive timeout so a reused connection is rarely a dead one.
    """

    _factory = _QuietClientFactory
    maxPersistentPerHost = 32
    cachedConnectionTimeout = 50

    def _putConnection(self, key: Any, connection: Any) -> None:
        # A body cut with stopProducing() may still end in the same read; the
        # connection then comes back "quiescent" while it is closing, and the next
        # request written on it would fail. Never cache a closing connection.
        transport = getattr(connection, "transport", None)
        if transport is None or getattr(transport, "disconnecting", False):
            return
        super()._putConnection(key, connection)


def makePool(reactor: Any, persistent: bool = True) -> HTTPConnectionPool:
    """
    The pool the service owns (closed when it stops).
    """
    return UpstreamPool(reactor, persistent=persistent)


class PoolService(Service):
    """
    Closes pooled upstream connections when the service stops.
    """

    def __init__(self, pool: HTTPConnectionPool) -> None:
        self._pool = pool

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._pool.closeCachedConnections()


class ProxyService(MultiService):
    """
    The whole proxy; L{listening} tells where it listens.
    """

    listening: ListeningService

    def startService(self) -> None:
        super().startService()
        # Everything built so far lives for the life of the process: keep the
        # collector from walking it again and again (shorter pauses under load).
        gc.collect()
        gc.freeze()
