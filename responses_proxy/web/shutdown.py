# -*- test-case-name: tests.test_front -*-
"""
C{GET /shutdown} (with C{--http-shutdown}): how an unprivileged user stops a proxy it
cannot signal.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from responses_proxy.web.front import StrictHTTPChannel
from responses_proxy.web.timers import Clock

_log = Logger(namespace="responses_proxy")


class ShutdownResource(Resource):
    """
    Answer 200, and stop once the reply has left.

    The stop waits for the client connection to close (the reply is sent with
    C{Connection: close}), because stopping the reactor drops unflushed buffers; a short
    fallback covers a client that never closes.
    """

    isLeaf = True

    def __init__(self, clock: Clock, stop: Callable[[], None], grace: float = 2.0) -> None:
        super().__init__()
        self._stop = stop
        self._fallback = clock.deadline(grace, self._stopOnce)
        self._stopping = False

    def render(self, request: IRequest) -> bytes:
        request.setHeader(b"connection", b"close")
        request.setHeader(b"content-length", b"0")
        channel = request.channel
        channel.persistent = False
        if isinstance(channel, StrictHTTPChannel):
            channel.notifyClosed().addBoth(lambda _: self._stopOnce())
        self._fallback.start()
        _log.info("shutdown requested over HTTP")
        return b""

    def _stopOnce(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._fallback.cancel()
            self._stop()
