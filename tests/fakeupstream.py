# -*- test-case-name: tests.test_fakeupstream -*-
"""
A scriptable fake upstream, run as a real process by the integration tests.

C{python -m tests.fakeupstream --info FILE [--tls-cert PEM --tls-key PEM]} listens on two
ephemeral ports on 127.0.0.1: the I{upstream} port (HTTP, or HTTPS with a cert and key),
which records every request (any method, any path) and answers it from a FIFO queue of
reply specs, and a plain-HTTP I{control} port with which a test scripts the replies and
reads what was recorded. Once both are bound, C{{"port", "control_port", "pid"}} and a
newline are written to FILE atomically. SIGTERM, SIGINT or C{POST /shutdown} stop it
(exit status 0).

Reply spec (a JSON object; an unknown field is a 400 at enqueue time):
  - C{status} (200), C{headers} (list of C{[name, value]}; C{content-type} defaults to
    C{application/json}, or C{text/event-stream} with C{sse});
  - the body, at most one of: C{body} (UTF-8 text), C{body_b64}, C{chunks} (list of
    C{{"data": str}} / C{{"b64": str}}, each with an optional C{delay} in seconds, or
    C{{"gate": NAME}} which holds the rest until C{POST /release?gate=NAME}), C{sse} (list
    of JSON values, one C{data: <json>\n\n} event each, a string written raw so
    C{"[DONE]"} works; C{sse_delay} between events; C{event_lines: true} adds
    C{event: <type>}), C{generate} (C{{"bytes": N, "chunk": K}}: N bytes of filler as
    fast as the consumer takes them, paused by backpressure), C{echo: true} (the JSON of
    the recorded request, headers included);
  - C{content_length: true}: send C{Content-Length} (the whole body's length, whatever
    the kind), otherwise the body is chunked;
  - C{delay_headers} (seconds before the head), C{never_respond: true} (no answer at all);
  - C{then} after the body: C{finish} (default), C{hang} (leave the response open until
    the client goes), C{reset} (abort the TCP connection: RST), C{close} (close without
    the last chunk); C{then_gate} and C{then_delay} hold it back.

Control port (JSON): C{POST /replies} (a list of specs, enqueued), C{POST /default} (one
spec), C{POST /reset} (queue, records, connection log, gates and the default reply),
C{POST /release?gate=NAME}, C{POST /shutdown}, C{GET /requests}, C{GET /connections},
C{GET /wait?requests=N|closed=CONN|outcome=INDEX|paused=INDEX&timeout=S} (long poll: 200
when it happens, 408 at the timeout).

Recorded headers come from C{getAllRawHeaders()}: duplicates are kept in order, but
grouped under the first occurrence of their name, and Twisted canonicalises name case.
Times are C{time.monotonic()}, which on Linux is comparable across processes.

The upstream side never logs request headers or bodies: in tests they hold the proxy's key.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python.failure import Failure
from twisted.web.http import NO_BODY_CODES, Request
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from zope.interface import implementer

from responses_proxy.web.service import writeServerInfo

_log = Logger()

DEFAULT_SPEC: dict[str, Any] = {"status": 200, "body": '{"ok": true}'}

_BODY_KINDS = ("body", "body_b64", "chunks", "sse", "generate", "echo")
_SPEC_KEYS = frozenset(
    _BODY_KINDS
    + (
        "status",
        "headers",
        "sse_delay",
        "event_lines",
        "content_length",
        "delay_headers",
        "never_respond",
        "then",
        "then_delay",
        "then_gate",
    )
)
_THEN = ("finish", "hang", "reset", "close")

# The generator writes pre-framed pieces of about this size, a few per reactor turn.
_PIECE = 256 * 1024
_GENERATE_BURST = 4
_PROSE = (
    b"You are Codex, a coding agent. Keep answers short; prefer running commands to "
    b"guessing; read files before editing them; never revert changes you did not make. "
)

# The request header that picks a named reply (POST /named) instead of the queue.
REPLY_HEADER = b"x-fake-reply"


class SpecError(ValueError):
    """
    A reply spec is malformed; the control port answers 400 with this message.
    """


def _isNumber(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def validateSpec(spec: object) -> dict[str, Any]:
    """
    Check a reply spec, so a typo in a test fails loudly at enqueue time.

    Fields: C{status} (int, default 200); C{headers} (list of C{[name, value]});
    one body kind of C{body} (str), C{body_b64}, C{chunks} (list of C{{"data": str}} or
    C{{"b64": str}} with an optional C{delay}, or C{{"gate": NAME}}), C{sse} (list of JSON
    values, with C{sse_delay} and C{event_lines}), C{generate} (C{{"bytes": N, "chunk": K}}),
    C{echo} (true); C{content_length}; C{delay_headers}; C{never_respond}; C{then} (one of
    C{finish}, C{hang}, C{reset}, C{close}) with optional C{then_delay} and C{then_gate}.

    @param spec: the decoded JSON.
    @return: C{spec}, unchanged.
    @raise SpecError: if it is not a valid spec.
    """
    if not isinstance(spec, dict):
        raise SpecError("a reply spec must be a JSON object")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise SpecError(f"unknown reply spec fields: {sorted(unknown)}")
    kinds = [k for k in _BODY_KINDS if k in spec]
    if len(kinds) > 1:
        raise SpecError(f"more than one body kind: {kinds}")
    status = spec.get("status", 200)
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise SpecError("status must be an integer between 100 and 999")
    headers = spec.get("headers", [])
    if not isinstance(headers, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h)
        for h in headers
    ):
        raise SpecError("headers must be a list of [name, value] strings")
    if "body" in spec and not isinstance(spec["body"], str):
        raise SpecError("body must be a string")
    if "body_b64" in spec:
        try:
            base64.b64decode(spec["body_b64"], validate=True)
        except (TypeError, ValueError) as e:
            raise SpecError("body_b64 must be base64") from e
    if "chunks" in spec:
        chunks = spec["chunks"]
        if not isinstance(chunks, list):
            raise SpecError("chunks must be a list")
        for c in chunks:
            if not isinstance(c, dict) or len({"data", "b64", "gate"} & set(c)) != 1:
                raise SpecError('each chunk needs exactly one of "data", "b64", "gate"')
            if set(c) - {"data", "b64", "gate", "delay"}:
                raise SpecError(f"unknown chunk fields: {sorted(c)}")
            if "delay" in c and not _isNumber(c["delay"]):
                raise SpecError("chunk delay must be a number >= 0")
            if "data" in c and not isinstance(c["data"], str):
                raise SpecError("chunk data must be a string")
            if "gate" in c and not isinstance(c["gate"], str):
                raise SpecError("chunk gate must be a string")
            if "b64" in c:
                try:
                    base64.b64decode(c["b64"], validate=True)
                except (TypeError, ValueError) as e:
                    raise SpecError("chunk b64 must be base64") from e
    if "sse" in spec and not isinstance(spec["sse"], list):
        raise SpecError("sse must be a list")
    if "generate" in spec:
        g = spec["generate"]
        if (
            not isinstance(g, dict)
            or set(g) - {"bytes", "chunk", "event", "prose"}
            or not isinstance(g.get("bytes"), int)
            or g["bytes"] < 0
            or not isinstance(g.get("chunk", 16384), int)
            or g.get("chunk", 16384) < 1
            or not isinstance(g.get("event", 1), int)
            or g.get("event", 1) < 1
            or not isinstance(g.get("prose", False), bool)
        ):
            raise SpecError(
                'generate must be {"bytes": N >= 0, "chunk": K >= 1, "event": E >= 1,'
                ' "prose": bool}'
            )
    if "echo" in spec and spec["echo"] is not True:
        raise SpecError("echo must be true")
    for key in ("sse_delay", "delay_headers", "then_delay"):
        if key in spec and not _isNumber(spec[key]):
            raise SpecError(f"{key} must be a number >= 0")
    for key in ("content_length", "never_respond", "event_lines"):
        if key in spec and not isinstance(spec[key], bool):
            raise SpecError(f"{key} must be a boolean")
    if spec.get("then", "finish") not in _THEN:
        raise SpecError(f"then must be one of {list(_THEN)}")
    if "then_gate" in spec and not isinstance(spec["then_gate"], str):
        raise SpecError("then_gate must be a string")
    return spec


def sseFrame(value: object, eventLines: bool = False) -> bytes:
    """
    Frame one SSE event as C{data: <json>\\n\\n}.

    @param value: a JSON value; a string is written raw (so C{"[DONE]"} works).
    @param eventLines: prefix C{event: <type>\\n} when C{value} is an object with a type.
    @return: the bytes of the event.
    """
    data = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    prefix = ""
    if eventLines and isinstance(value, dict) and isinstance(value.get("type"), str):
        prefix = f"event: {value['type']}\n"
    return f"{prefix}data: {data}\n\n".encode()


def fillerPiece(size: int, event: int | None = None, prose: bool = False) -> bytes:
    """
    SSE-looking filler of exactly C{size} bytes, for the C{generate} body.

    @param size: the number of bytes.
    @param event: the size of each event in it (default: one event of C{size} bytes).
    @param prose: English prose instead of C{x}s (byte searches cost what they cost on
        real text).
    @return: C{data: xxx…\\n\\n} events (the last one cut to fit), or newlines when an
        event is too small for that.
    """
    event = size if event is None else event
    if event < 8:
        return b"\n" * size
    text = (_PROSE * (event // len(_PROSE) + 1))[: event - 8] if prose else b"x" * (event - 8)
    one = b"data: " + text + b"\n\n"
    return (one * (size // event + 1))[:size]


class RecordedRequest:
    """
    One request received on the upstream port, and what became of it.

    @ivar outcome: C{"pending"}, then C{"finished"} (the response was completed) or
        C{"lost"} (the connection went away first).
    @ivar sent: body bytes written so far.
    @ivar paused: how many times backpressure paused this response's producer.
    @ivar request: the request itself (in memory, a test may answer it by hand).
    """

    def __init__(
        self,
        index: int,
        method: str,
        target: str,
        headers: list[list[str]],
        body: bytes,
        conn: int,
        t: float,
    ) -> None:
        self.index = index
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.conn = conn
        self.t = t
        self.outcome = "pending"
        self.sent = 0
        self.paused = 0
        self.request: Request | None = None

    def toJSON(self) -> dict[str, Any]:
        """
        @return: the record as C{GET /requests} and C{echo} show it.
        """
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "index": self.index,
            "method": self.method,
            "target": self.target,
            "headers": self.headers,
            "body_b64": base64.b64encode(self.body).decode("ascii"),
            "body": text,
            "conn": self.conn,
            "t": self.t,
        }

    def outcomeJSON(self) -> dict[str, Any]:
        """
        @return: the entry C{GET /connections} shows for this request.
        """
        return {
            "index": self.index,
            "conn": self.conn,
            "outcome": self.outcome,
            "sent": self.sent,
            "paused": self.paused,
        }


class _Waiter:
    """
    A condition someone is waiting for, re-checked after every state change.
    """

    def __init__(self, ready: Callable[[], bool], fire: Callable[[], None]) -> None:
        self.ready = ready
        self.fire = fire


class FakeState:
    """
    Everything the two ports share: the reply queue, the records, the connection log,
    open gates, and the conditions being waited for.
    """

    def __init__(self, clock: IReactorTime, keepRecords: bool = True) -> None:
        """
        @param clock: the reactor (a fake one in memory).
        @param keepRecords: keep each request (a benchmark's millions would not fit).
        """
        self.clock = clock
        self.keepRecords = keepRecords
        self._nextConn = 1
        self.openConns: set[int] = set()
        self._waiters: list[_Waiter] = []
        self.reset()

    def reset(self) -> None:
        """
        Forget the queue, the default reply, the records, the connection log and gates.
        Connection ids keep counting, so an old connection is never mistaken for a new one.
        """
        self.queue: deque[dict[str, Any]] = deque()
        self.default: dict[str, Any] = dict(DEFAULT_SPEC)
        self.named: dict[str, dict[str, Any]] = {}
        self.stepCache: dict[int, tuple[dict[str, Any], list[tuple[str, Any, float]]]] = {}
        self.requestCount = 0
        self.records: list[RecordedRequest] = []
        self.events: list[dict[str, Any]] = []
        self.total = 0
        self.gates: set[str] = set()
        self.changed()

    def nextSpec(self, name: str | None = None) -> dict[str, Any]:
        """
        @param name: the reply the request asked for by name (L{REPLY_HEADER}).
        @return: that named reply spec, else the next queued one, else the default one.
        """
        if name is not None:
            return self.named.get(
                name, {"status": 500, "body": json.dumps({"error": f"no reply named {name}"})}
            )
        if self.queue:
            return self.queue.popleft()
        return self.default

    def connectionOpened(self) -> int:
        """
        Log a new upstream connection.

        @return: its id.
        """
        conn = self._nextConn
        self._nextConn += 1
        self.openConns.add(conn)
        self.total += 1
        self.events.append({"conn": conn, "event": "open", "t": time.monotonic()})
        self.changed()
        return conn

    def connectionClosed(self, conn: int) -> None:
        """
        Log that an upstream connection closed.

        @param conn: its id.
        """
        self.openConns.discard(conn)
        self.events.append({"conn": conn, "event": "close", "t": time.monotonic()})
        self.changed()

    def isClosed(self, conn: int) -> bool:
        """
        @param conn: a connection id.
        @return: whether that connection has been opened and is now closed.
        """
        return conn < self._nextConn and conn not in self.openConns

    def addWaiter(self, waiter: _Waiter) -> None:
        """
        Fire C{waiter} now if it is ready, else when a later change makes it ready.
        """
        if waiter.ready():
            waiter.fire()
        else:
            self._waiters.append(waiter)

    def removeWaiter(self, waiter: _Waiter) -> None:
        """
        Stop waiting for C{waiter} (timeout, or the client went away).
        """
        if waiter in self._waiters:
            self._waiters.remove(waiter)

    def changed(self) -> None:
        """
        Something changed: fire every waiter that is now ready.
        """
        for waiter in list(self._waiters):
            if waiter in self._waiters and waiter.ready():
                self._waiters.remove(waiter)
                waiter.fire()


class _TrackingProtocol(ProtocolWrapper):
    """
    Gives each connection an id and tells the L{FakeState} when it opens and closes.
    """

    connId = 0

    def connectionMade(self) -> None:
        self.connId = self.factory.onOpen()
        # Answers go out as they are written (the benchmarks time them).
        setNoDelay = getattr(self.transport, "setTcpNoDelay", None)
        if setNoDelay is not None:
            setNoDelay(True)
        ProtocolWrapper.connectionMade(self)

    def connectionLost(self, reason: Failure) -> None:
        ProtocolWrapper.connectionLost(self, reason)
        self.factory.onClose(self.connId)


class TrackingFactory(WrappingFactory):
    """
    A L{WrappingFactory} that reports connections opening and closing.
    """

    protocol = _TrackingProtocol
    noisy = False

    def __init__(
        self,
        wrappedFactory: Site,
        onOpen: Callable[[], int],
        onClose: Callable[[int], None],
    ) -> None:
        WrappingFactory.__init__(self, wrappedFactory)
        self.onOpen = onOpen
        self.onClose = onClose


class QuietSite(Site):
    """
    A L{Site} without an access log: nothing about a request is ever logged.
    """

    noisy = False

    def log(self, request: Request) -> None:
        pass


def _connId(request: Request) -> int:
    return getattr(request.channel.transport, "connId", 0)


def bodySteps(spec: dict[str, Any], record: RecordedRequest) -> list[tuple[str, Any, float]]:
    """
    What a reply spec's body is made of: C{("write", bytes, delay)}, C{("gate", name,
    delay)} and C{("generate", shape, 0)} steps.
    """
    steps: list[tuple[str, Any, float]] = []
    if "body" in spec:
        steps.append(("write", spec["body"].encode("utf-8"), 0))
    elif "body_b64" in spec:
        steps.append(("write", base64.b64decode(spec["body_b64"]), 0))
    elif "echo" in spec:
        echo = json.dumps(record.toJSON()).encode("utf-8")
        steps.append(("write", echo, 0))
    elif "chunks" in spec:
        for c in spec["chunks"]:
            delay = c.get("delay", 0)
            if "gate" in c:
                steps.append(("gate", c["gate"], delay))
            elif "b64" in c:
                steps.append(("write", base64.b64decode(c["b64"]), delay))
            else:
                steps.append(("write", c["data"].encode("utf-8"), delay))
    elif "sse" in spec:
        eventLines = spec.get("event_lines", False)
        gap = spec.get("sse_delay", 0)
        for i, value in enumerate(spec["sse"]):
            steps.append(("write", sseFrame(value, eventLines), gap if i else 0))
    elif "generate" in spec:
        g = spec["generate"]
        chunk = g.get("chunk", 16384)
        shape = (g["bytes"], chunk, g.get("event", chunk), g.get("prose", False))
        steps.append(("generate", shape, 0))
    return steps


def _frame(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


@implementer(IPushProducer)
class _Generator:
    """
    Writes C{total} bytes of filler in C{chunk}-byte HTTP chunks as fast as the consumer
    takes them, pausing when the transport's buffer is full (a push producer registered on
    the request). The chunks are framed once and written many to a piece, so the fake
    outruns what it feeds.
    """

    def __init__(self, reply: _Reply, total: int, chunk: int, event: int, prose: bool) -> None:
        self._reply = reply
        self._chunk = chunk
        self._body = fillerPiece(chunk, event, prose)
        self._framed = _frame(self._body) if reply.request.chunked else self._body
        self._perPiece = max(1, _PIECE // len(self._framed))
        self._piece = self._framed * self._perPiece
        self._chunks = total // chunk
        self._tail = fillerPiece(total % chunk, event, prose)
        self._paused = False
        self._stopped = False
        self._call: Any = None

    def start(self) -> None:
        self._reply.request.registerProducer(self, True)
        self._schedule()

    def _schedule(self) -> None:
        if self._call is None and not self._stopped:
            self._call = self._reply.clock.callLater(0, self._produce)

    def _produce(self) -> None:
        self._call = None
        reply = self._reply
        burst = 0
        while (
            self._chunks > 0
            and not self._paused
            and not self._stopped
            and not reply.gone
            and burst < _GENERATE_BURST
        ):
            n = min(self._perPiece, self._chunks)
            self._chunks -= n
            reply.record.sent += n * self._chunk
            burst += 1
            reply.writeFramed(self._piece if n == self._perPiece else self._framed * n)
        if self._stopped or reply.gone:
            return
        if self._chunks == 0:
            if self._tail:
                reply.record.sent += len(self._tail)
                reply.writeFramed(_frame(self._tail) if reply.request.chunked else self._tail)
            self._stopped = True
            reply.request.unregisterProducer()
            reply.state.changed()
            reply.afterBody()
        elif not self._paused:
            self._schedule()

    def pauseProducing(self) -> None:
        if not self._paused:
            self._paused = True
            self._reply.record.paused += 1
            self._reply.state.changed()

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


class _Reply:
    """
    Plays one reply spec on one upstream request.
    """

    def __init__(
        self,
        state: FakeState,
        request: Request,
        record: RecordedRequest,
        spec: dict[str, Any],
    ) -> None:
        self.state = state
        self.clock = state.clock
        self.request = request
        self.record = record
        self.spec = spec
        self.gone = False
        self._calls: list[Any] = []
        self._gateWaiter: _Waiter | None = None
        self._steps: deque[tuple[str, Any, float]] = deque()

    def start(self) -> None:
        self.request.notifyFinish().addCallbacks(self._finished, self._lost)
        if self.spec.get("never_respond"):
            return
        self._later(self.spec.get("delay_headers", 0), self._sendHead)

    def _finished(self, _: object) -> None:
        self.record.outcome = "finished"
        self.state.changed()

    def _lost(self, _: Failure) -> None:
        self.gone = True
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls = []
        if self._gateWaiter is not None:
            self.state.removeWaiter(self._gateWaiter)
        self.record.outcome = "lost"
        self.state.changed()

    def _later(self, delay: float, f: Callable[[], None]) -> None:
        if self.gone:
            return
        if not delay:
            f()
            return

        def run() -> None:
            self._calls.remove(call)
            if not self.gone:
                f()

        call = self.clock.callLater(delay, run)
        self._calls.append(call)

    def _bodySteps(self) -> None:
        spec = self.spec
        state = self.state
        reused = spec is state.default or any(spec is v for v in state.named.values())
        if "echo" in spec or not reused:
            self._steps.extend(bodySteps(spec, self.record))
            return
        # Named and default specs serve many requests: their steps are built once.
        cached = self.state.stepCache.get(id(spec))
        if cached is None or cached[0] is not spec:
            cached = (spec, bodySteps(spec, self.record))
            self.state.stepCache[id(spec)] = cached
        self._steps.extend(cached[1])

    def _bodyLength(self) -> int:
        total = 0
        for kind, arg, _ in self._steps:
            if kind == "write":
                total += len(arg)
            elif kind == "generate":
                total += arg[0]
        return total

    def _sendHead(self) -> None:
        spec = self.spec
        request = self.request
        self._bodySteps()
        request.setResponseCode(spec.get("status", 200))
        defaultType = "text/event-stream" if "sse" in spec else "application/json"
        grouped: dict[bytes, list[bytes]] = {}
        for name, value in spec.get("headers", []):
            grouped.setdefault(name.lower().encode("latin-1"), []).append(
                value.encode("latin-1")
            )
        grouped.setdefault(b"content-type", [defaultType.encode("ascii")])
        if spec.get("content_length"):
            grouped[b"content-length"] = [str(self._bodyLength()).encode("ascii")]
        for name, values in grouped.items():
            request.responseHeaders.setRawHeaders(name, values)
        request.write(b"")  # send the status line and headers now
        self._nextStep()

    def _nextStep(self) -> None:
        """
        Play the steps: the writes due now go out together (each still its own HTTP
        chunk), then wait for the next delay or gate.
        """
        steps = self._steps
        while not self.gone:
            if not steps:
                self.afterBody()
                return
            kind, arg, delay = steps[0]
            if delay:
                steps[0] = (kind, arg, 0)
                self._later(delay, self._nextStep)
                return
            steps.popleft()
            if kind == "gate":
                self._waitGate(arg, self._nextStep)
                return
            if kind == "generate":
                _Generator(self, *arg).start()
                return
            pieces = [arg]
            while steps and steps[0][0] == "write" and not steps[0][2]:
                pieces.append(steps.popleft()[1])
            self._writePieces(pieces)

    def _writePieces(self, pieces: list[bytes]) -> None:
        self.record.sent += sum(map(len, pieces))
        if self.request.chunked:
            self.writeFramed(b"".join(_frame(p) for p in pieces if p))
        else:
            self.writeFramed(b"".join(pieces))
        self.state.changed()

    def writeFramed(self, data: bytes) -> None:
        """
        Write body bytes already framed for the response's transfer coding (the head has
        been sent), in one write.
        """
        request = self.request
        if data and not self.gone and request.method != b"HEAD" and (
            request.code not in NO_BODY_CODES
        ):
            request.channel.write(data)

    def _waitGate(self, name: str, then: Callable[[], None]) -> None:
        def fire() -> None:
            self._gateWaiter = None
            then()

        self._gateWaiter = _Waiter(lambda: name in self.state.gates, fire)
        self.state.addWaiter(self._gateWaiter)

    def afterBody(self) -> None:
        """
        The body has been written: wait for C{then_gate} and C{then_delay}, then do C{then}.
        """
        gate = self.spec.get("then_gate")
        if gate is not None and not self.gone:
            self._waitGate(gate, self._afterGate)
        else:
            self._afterGate()

    def _afterGate(self) -> None:
        self._later(self.spec.get("then_delay", 0), self._then)

    def _whenFlushed(self, transport: object, then: Callable[[], None]) -> None:
        """
        Call C{then} once the transport's buffer has reached the kernel (or after
        L{_FLUSH_LIMIT} seconds, if the client does not read).
        """
        deadline = self.clock.seconds() + _FLUSH_LIMIT

        def check() -> None:
            if self.gone:
                return
            if _pendingBytes(transport) <= 0 or self.clock.seconds() >= deadline:
                then()
            else:
                self._later(_FLUSH_POLL, check)

        check()

    def _then(self) -> None:
        if self.gone:
            return
        then = self.spec.get("then", "finish")
        transport = self.request.channel.transport
        if then == "finish":
            self.request.finish()
        elif then == "reset":
            # abortConnection() drops what Twisted has not yet handed to the kernel:
            # let the body reach the socket first, so the client gets it, then the RST.
            self._whenFlushed(transport, transport.abortConnection)
        elif then == "close":
            transport.loseConnection()
        # "hang": leave the response unfinished until the client goes away.


def _pendingBytes(transport: object) -> int:
    """
    @return: bytes written to C{transport} (through any wrapping layers: the
        connection tracker, TLS) that the TCP transport has not yet passed to the kernel.
    """
    t = transport
    for _ in range(5):
        inner = getattr(t, "transport", None)
        if inner is None:
            break
        t = inner
    buffered = len(getattr(t, "dataBuffer", b"")) - getattr(t, "offset", 0)
    return buffered + getattr(t, "_tempDataLen", 0)


_FLUSH_POLL = 0.005
_FLUSH_LIMIT = 2.0


class UpstreamResource(Resource):
    """
    Records every request (any method, any path) and plays the next reply spec.
    """

    isLeaf = True

    def __init__(self, state: FakeState) -> None:
        Resource.__init__(self)
        self._state = state

    def render(self, request: Request) -> object:
        state = self._state
        request.content.seek(0)
        body = request.content.read()
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, values in request.requestHeaders.getAllRawHeaders()
            for value in values
        ]
        record = RecordedRequest(
            index=len(state.records),
            method=request.method.decode("latin-1"),
            target=request.uri.decode("latin-1"),
            headers=headers,
            body=body,
            conn=_connId(request),
            t=time.monotonic(),
        )
        state.requestCount += 1
        if state.keepRecords:
            record.request = request
            state.records.append(record)
        name = request.requestHeaders.getRawHeaders(REPLY_HEADER, [None])[0]
        spec = state.nextSpec(None if name is None else name.decode("latin-1"))
        reply = _Reply(state, request, record, spec)
        state.changed()
        reply.start()
        return NOT_DONE_YET


def _jsonBody(request: Request, code: int, obj: object) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(obj).encode("utf-8") + b"\n"


def _arg(request: Request, name: str) -> str | None:
    values = request.args.get(name.encode("ascii"))
    return values[0].decode("utf-8") if values else None


class ControlResource(Resource):
    """
    The control API: script replies, read records, wait for events, shut down.
    """

    isLeaf = True

    def __init__(self, state: FakeState, stop: Callable[[Request], None]) -> None:
        Resource.__init__(self)
        self._state = state
        self._stop = stop

    def render(self, request: Request) -> object:
        route = (request.method, request.path)
        handler = {
            (b"POST", b"/replies"): self._replies,
            (b"POST", b"/default"): self._default,
            (b"POST", b"/named"): self._named,
            (b"POST", b"/reset"): self._reset,
            (b"POST", b"/release"): self._release,
            (b"POST", b"/shutdown"): self._shutdown,
            (b"GET", b"/requests"): self._requests,
            (b"GET", b"/connections"): self._connections,
            (b"GET", b"/wait"): self._wait,
        }.get(route)
        if handler is None:
            return _jsonBody(request, 404, {"error": "no such control endpoint"})
        try:
            return handler(request)
        except SpecError as e:
            return _jsonBody(request, 400, {"error": str(e)})

    def _readJSON(self, request: Request) -> Any:
        request.content.seek(0)
        try:
            return json.loads(request.content.read())
        except ValueError as e:
            raise SpecError(f"body is not JSON: {e}") from e

    def _replies(self, request: Request) -> bytes:
        specs = self._readJSON(request)
        if not isinstance(specs, list):
            raise SpecError("POST /replies takes a JSON list of reply specs")
        for spec in specs:
            validateSpec(spec)
        self._state.queue.extend(specs)
        return _jsonBody(request, 200, {"queued": len(self._state.queue)})

    def _default(self, request: Request) -> bytes:
        self._state.default = validateSpec(self._readJSON(request))
        return _jsonBody(request, 200, {"ok": True})

    def _named(self, request: Request) -> bytes:
        specs = self._readJSON(request)
        if not isinstance(specs, dict):
            raise SpecError("POST /named takes a JSON object of name: reply spec")
        for spec in specs.values():
            validateSpec(spec)
        self._state.named.update(specs)
        return _jsonBody(request, 200, {"named": sorted(self._state.named)})

    def _reset(self, request: Request) -> bytes:
        self._state.reset()
        return _jsonBody(request, 200, {"ok": True})

    def _release(self, request: Request) -> bytes:
        gate = _arg(request, "gate")
        if gate is None:
            raise SpecError("POST /release needs ?gate=NAME")
        self._state.gates.add(gate)
        self._state.changed()
        return _jsonBody(request, 200, {"ok": True})

    def _shutdown(self, request: Request) -> bytes:
        self._stop(request)
        return _jsonBody(request, 200, {"ok": True})

    def _requests(self, request: Request) -> bytes:
        return _jsonBody(request, 200, [r.toJSON() for r in self._state.records])

    def _connectionsJSON(self) -> dict[str, Any]:
        state = self._state
        return {
            "open": len(state.openConns),
            "total": state.total,
            "request_count": state.requestCount,
            "events": state.events,
            "requests": [r.outcomeJSON() for r in state.records],
        }

    def _connections(self, request: Request) -> bytes:
        return _jsonBody(request, 200, self._connectionsJSON())

    def _record(self, index: int) -> RecordedRequest | None:
        records = self._state.records
        return records[index] if 0 <= index < len(records) else None

    def _wait(self, request: Request) -> object:
        state = self._state
        timeout = float(_arg(request, "timeout") or "10")
        requests, closed = _arg(request, "requests"), _arg(request, "closed")
        outcome, paused = _arg(request, "outcome"), _arg(request, "paused")
        ready: Callable[[], bool]
        result: Callable[[], dict[str, Any]]
        if requests is not None:
            n = int(requests)

            def ready() -> bool:
                return len(state.records) >= n

            def result() -> dict[str, Any]:
                return {"count": len(state.records)}

        elif closed is not None:
            conn = int(closed)

            def ready() -> bool:
                return state.isClosed(conn)

            def result() -> dict[str, Any]:
                return {"conn": conn, "closed": state.isClosed(conn)}

        elif outcome is not None or paused is not None:
            index = int(outcome if outcome is not None else paused)  # type: ignore[arg-type]

            def ready() -> bool:
                r = self._record(index)
                if r is None:
                    return False
                if outcome is not None:
                    return r.outcome != "pending"
                return r.paused > 0

            def result() -> dict[str, Any]:
                r = self._record(index)
                if r is None:
                    return {"index": index, "outcome": None}
                return r.outcomeJSON()

        else:
            raise SpecError("GET /wait needs requests=N, closed=CONN, outcome=I or paused=I")

        timer: list[Any] = []

        def fire() -> None:
            if timer and timer[0].active():
                timer[0].cancel()
            if not request._disconnected:
                request.write(_jsonBody(request, 200, result()))
                request.finish()

        waiter = _Waiter(ready, fire)
        if ready():
            return _jsonBody(request, 200, result())

        def expire() -> None:
            state.removeWaiter(waiter)
            if not request._disconnected:
                request.write(_jsonBody(request, 408, result()))
                request.finish()

        def gone(_: object) -> None:
            state.removeWaiter(waiter)
            if timer and timer[0].active():
                timer[0].cancel()

        timer.append(state.clock.callLater(timeout, expire))
        request.notifyFinish().addErrback(gone)
        state.addWaiter(waiter)
        return NOT_DONE_YET


def _parseArgs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeupstream")
    parser.add_argument("--info", required=True, help="where to write the ports (JSON)")
    parser.add_argument("--tls-cert", help="PEM certificate: serve HTTPS upstream")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--no-record", action="store_true", help="count requests, keep none (benchmarks)"
    )
    args = parser.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    return args


def main(argv: list[str] | None = None) -> int:
    """
    Run the fake upstream until SIGTERM, SIGINT or C{POST /shutdown}.

    @param argv: the arguments (default C{sys.argv[1:]}).
    @return: the exit status.
    """
    args = _parseArgs(sys.argv[1:] if argv is None else argv)
    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(sys.stderr)], redirectStandardIO=False
    )
    from twisted.internet import reactor

    state = FakeState(reactor, keepRecords=not args.no_record)
    upstream = TrackingFactory(
        QuietSite(UpstreamResource(state)), state.connectionOpened, state.connectionClosed
    )
    stopping: list[bool] = []

    def stopSoon(request: Request) -> None:
        # Stop once the control connection carrying the reply has closed (so the
        # reply is flushed), with a bound in case the client keeps it open.
        transport = request.channel.transport
        request.setHeader(b"connection", b"close")
        request.notifyFinish().addBoth(lambda _: transport.loseConnection())
        stopping.append(True)
        reactor.callLater(2, stop)

    def stop() -> None:
        if reactor.running:
            reactor.stop()

    def controlClosed(conn: int) -> None:
        if stopping:
            reactor.callLater(0, stop)

    control = TrackingFactory(
        QuietSite(ControlResource(state, stopSoon)), lambda: 0, controlClosed
    )
    if args.tls_cert:
        from twisted.internet import ssl

        with open(args.tls_cert, "rb") as f:
            certPEM = f.read()
        with open(args.tls_key, "rb") as f:
            keyPEM = f.read()
        options = ssl.PrivateCertificate.loadPEM(certPEM + b"\n" + keyPEM).options()
        upPort = reactor.listenSSL(0, upstream, options, interface="127.0.0.1")
    else:
        upPort = reactor.listenTCP(0, upstream, interface="127.0.0.1")
    controlPort = reactor.listenTCP(0, control, interface="127.0.0.1")
    info = {
        "port": upPort.getHost().port,
        "control_port": controlPort.getHost().port,
        "pid": os.getpid(),
    }
    # Announce readiness only once the reactor runs: its SIGTERM handler is installed
    # then, so a test that signals as soon as it reads the file gets a clean exit. The
    # proxy's own writer: the same atomic file the tests wait for from the proxy.
    reactor.callWhenRunning(
        writeServerInfo, args.info, info["port"], info["pid"], control_port=info["control_port"]
    )
    _log.info(
        "fake upstream on port {port}, control on port {control}",
        port=info["port"],
        control=info["control_port"],
    )
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
