# -*- test-case-name: tests.test_tap -*-
"""
The services both entry points run: key custody, the listening port with its server-info
file, and the upstream connection pool.

The socket is bound before the service starts (so a port in use is a start-up error that
surfaces before twistd daemonizes) and handed to the reactor when the service starts, in
the process that will serve (so the server-info pid is the daemon's).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IReactorSocket
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool
from twisted.web.server import Site

from responses_proxy import hardening
from responses_proxy.config import StartupError
from responses_proxy.keyfile import AuthorizationHeader, lockBytes
from responses_proxy.web.store import IResponseStore

_log = Logger(namespace="responses_proxy")


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
    Create missing parent directories as 0755 whatever the umask (twistd daemonizes with
    umask 0077, and the unprivileged user must be able to reach the file).
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


def writeServerInfo(path: str, port: int, pid: int, **extra: int) -> None:
    """
    Write C{{"port": P, "pid": N}} and a newline atomically, mode 0644.

    @param extra: more fields (the test suite's fake upstream adds its control port).
    """
    _makeParents(path)
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".server-info-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"port": port, "pid": pid, **extra}) + "\n")
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

    twistd calls L{privilegedStartService} (after daemonizing) and then L{startService};
    C{twist} calls only the latter, so either adopts the socket once.
    """

    def __init__(
        self, reactor: IReactorSocket, sock: socket.socket, site: Site, serverInfo: str | None
    ) -> None:
        self._reactor = reactor
        self._socket: socket.socket | None = sock
        self._site = site
        self._serverInfo = serverInfo
        self.port: IListeningPort | None = None

    @property
    def boundPort(self) -> int:
        """
        The TCP port this service listens (or will listen) on.
        """
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
            self.port = self._reactor.adoptStreamPort(sock.fileno(), socket.AF_INET, self._site)
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
    Re-apply what C{fork} and a uid change undo: memory locks are not inherited by the
    daemon, and a uid/gid change resets the dumpable flag.
    """

    def __init__(self, authorization: AuthorizationHeader) -> None:
        self._authorization = authorization

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        # Locks are per process: after twistd's fork the daemon must lock again.
        self._authorization.locked = lockBytes(self._authorization.value)
        if not self._authorization.locked:
            _log.warn("could not mlock the API key (continuing without the lock)")

    def startService(self) -> None:
        super().startService()
        hardening.setNonDumpable()


class PoolService(Service):
    """
    Closes pooled upstream connections when the service stops.
    """

    def __init__(self, pool: HTTPConnectionPool) -> None:
        self._pool = pool

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._pool.closeCachedConnections()


class StoreService(Service):
    """
    Closes the bridge's response store when the service stops (queued saves finish).
    """

    def __init__(self, store: IResponseStore) -> None:
        self._store = store

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self._store.close()


class ProxyService(MultiService):
    """
    The whole proxy.

    @ivar listening: where it listens.
    @ivar site: the HTTP site it serves.
    """

    def __init__(self, site: Site, listening: ListeningService, *others: Service) -> None:
        """
        @param others: the other services, started in this order, before C{listening}
            (so the key is locked again before anything is served).
        """
        super().__init__()
        self.listening = listening
        self.site = site
        for child in others:
            child.setServiceParent(self)
        listening.setServiceParent(self)

    def startService(self) -> None:
        super().startService()
        hardening.freezeHeap()
