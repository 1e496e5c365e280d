"""
The user's stack used bare: the plainest pass-through a C{twisted.web} resource can be
(no admission, no framing checks, no limits, no redaction, no access log), forwarding
through C{Agent}, or through treq over the same C{Agent} (C{--treq}). Only
C{bench/bench_stack.py} runs it, to show what the stack itself costs per request; it is
not a product and holds no key (it sends a made-up one). It borrows one piece of the
proxy, C{WholeBody} (a body in memory written at once), so the bare stack is not charged
the cooperator turn of Twisted's C{FileBodyProducer}.

    python bench/_bareproxy.py UPSTREAM_URL INFO_FILE [--treq]

It listens on 127.0.0.1 (a free port) and writes C{{"port": ..., "pid": ...}} to INFO_FILE
when ready.
"""

from __future__ import annotations

import json
import os
import sys

from twisted.internet import reactor
from twisted.internet.protocol import Protocol
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest, IResponse

from responses_proxy.web.upstream import WholeBody

_HOP = {b"host", b"connection", b"content-length", b"authorization"}


class _Relay(Protocol):
    def __init__(self, request: IRequest) -> None:
        self._request = request

    def dataReceived(self, data: bytes) -> None:
        self._request.write(data)

    def connectionLost(self, reason: object = None) -> None:
        self._request.finish()


class _Leaf(resource.Resource):
    isLeaf = True

    def __init__(self, url: str, useTreq: bool) -> None:
        super().__init__()
        self._url = url
        self._agent = Agent(reactor, pool=HTTPConnectionPool(reactor))
        self._treq = None
        if useTreq:
            from treq.client import HTTPClient

            self._treq = HTTPClient(self._agent)

    def render_POST(self, request: IRequest) -> int:
        headers = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in _HOP:
                headers.setRawHeaders(name, values)
        headers.setRawHeaders(b"authorization", [b"Bearer sk-bare-not-a-key"])
        request.content.seek(0)
        body = WholeBody(request.content.read())
        if self._treq is not None:
            d = self._treq.request(
                "POST", self._url, headers=headers, data=body, unbuffered=True
            )
        else:
            d = self._agent.request(b"POST", self._url.encode("ascii"), headers, body)

        def relay(response: IResponse) -> None:
            request.setResponseCode(response.code)
            for name, values in response.headers.getAllRawHeaders():
                request.responseHeaders.setRawHeaders(name, values)
            response.deliverBody(_Relay(request))

        d.addCallback(relay)
        return server.NOT_DONE_YET


def main() -> None:
    url, info = sys.argv[1], sys.argv[2]
    root = resource.Resource()
    v1 = resource.Resource()
    root.putChild(b"v1", v1)
    v1.putChild(b"responses", _Leaf(url, "--treq" in sys.argv[3:]))
    site = server.Site(root)
    site.log = lambda request: None  # type: ignore[method-assign]
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    with open(info + ".tmp", "w") as f:
        json.dump({"port": port.getHost().port, "pid": os.getpid()}, f)
    os.replace(info + ".tmp", info)
    reactor.run()


if __name__ == "__main__":
    main()
