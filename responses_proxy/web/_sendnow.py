# -*- test-case-name: tests.test_sendnow -*-
"""
The one place that asks a transport to send what it has queued now, instead of on the
reactor's next turn. It reads two private attributes of Twisted's C{FileDescriptor} and
one of its TLS transport, each checked by C{tests/test_sendnow.py}, which fails loudly if
Twisted changes them.

Why: a Twisted transport's C{write()} only queues bytes and asks the reactor to watch
the socket for writability; they leave after everything else this turn does and one more
turn of the loop. For a forwarded request that is on the critical path twice (the request
going upstream, the response's last bytes going to the client), and the bookkeeping
that follows each (Deferred callbacks, the access log line, the pool taking the
connection back) ran before the bytes left. Sending at once moves that work after them.

Over TLS there is one more queue: Twisted's TLS transport (C{BufferingTLSTransport})
gathers writes under 64 KB and encrypts them on the next reactor turn (C{callLater(0)}),
so a 40 KB request had not even reached the TCP transport when the turn ended. Its
gatherer (the private C{_aggregator}) is flushed first, which is what that call would
do; the call then finds nothing left.

C{doWrite()} is the public C{IWriteDescriptor} method the reactor calls when the socket
is writable; calling it early is safe when the socket is not writable (nothing is sent,
the rest waits for the reactor as before) or broken (the error is left for the reactor's
own call). It is not called on a transport that is closing or half-closed, whose
C{doWrite()} ends the connection and expects its return value to be acted on.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.abstract import FileDescriptor

# A TLS transport wraps the TCP one (TLSMemoryBIOProtocol.transport). It also claims the
# interfaces of the transport it wraps (ProtocolWrapper does that), so the TCP transport
# is found by its class, not by IReadWriteDescriptor.
_MAX_WRAPPERS = 3


def sendNow(transport: Any) -> None:
    """
    Send the bytes C{transport} (or the TCP transport under it) has queued, if any.
    """
    for _ in range(_MAX_WRAPPERS):
        if transport is None or isinstance(transport, FileDescriptor):
            break
        gathered = getattr(transport, "_aggregator", None)
        if gathered is not None:
            gathered.flush()
        transport = getattr(transport, "transport", None)
    else:
        return
    if (
        transport is None
        or not transport.connected
        or transport.disconnecting
        or getattr(transport, "_writeDisconnecting", True)
        or not getattr(transport, "_tempDataLen", 0)
    ):
        return
    transport.doWrite()
