# -*- test-case-name: tests.test_passthrough_memory -*-
"""
The pass-through leaf: C{POST /v1/responses} forwarded through treq, streamed both ways.

The request body goes up through a body producer; the response comes back through a
L{RelayBody} whose transport is the client request's producer.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from responses_proxy.headers import clientResponseHeaders, upstreamRequestHeaders
from responses_proxy.web.bodies import RelayBody, endedCleanly
from responses_proxy.web.exchange import Upstream, UpstreamExchange, requestBody
from responses_proxy.web.front import internalError

_log = Logger(namespace="responses_proxy")


def _phrase(phrase: bytes | None) -> bytes | None:
    if not phrase or any(b < 0x20 or b == 0x7F for b in phrase):
        return None
    return phrase


class _Relay:
    """
    One forwarded request, from the client's body to the end of the upstream's.
    """

    def __init__(self, exchange: UpstreamExchange) -> None:
        self._exchange = exchange

    def start(self) -> None:
        exchange = self._exchange
        request = exchange.request
        upstream = exchange.upstream
        headers = list(request.requestHeaders.getAllRawHeaders())
        pairs = upstreamRequestHeaders(headers, upstream.authorization.value)
        content = requestBody(request)
        if exchange.dump is not None:
            exchange.dump.writeRequest(
                request.method, request.uri, headers, content.read(), upstream.url
            )
        d = exchange.send(pairs, upstream.client.bodyProducer(content))
        d.addCallback(self._gotResponse).addErrback(lambda f: internalError(request, f))

    def _gotResponse(self, response: IResponse | None) -> None:
        if response is None:
            return
        exchange = self._exchange
        exchange.request.setResponseCode(response.code, _phrase(response.phrase))
        exchange.setResponseHeaders(clientResponseHeaders(response.headers.getAllRawHeaders()))
        response.deliverBody(RelayBody(exchange.streamBody, self._data, self._ended))

    def _data(self, data: bytes) -> None:
        if self._exchange.dump is not None:
            self._exchange.dump.upstreamData(data)
        self._exchange.write(data)

    def _ended(self, reason: Failure) -> None:
        exchange = self._exchange
        exchange.bodyDone()
        if exchange.clientGone:
            return
        if endedCleanly(reason):
            exchange.finishDump("complete")
            exchange.finish()
            return
        _log.info("upstream stream ended abnormally; closing the client connection")
        exchange.finishDump("upstream_failed")
        exchange.abortClient()


class PassThroughLeaf(Resource):
    """
    The leaf at C{/v1/responses} in pass-through mode.
    """

    isLeaf = True

    def __init__(self, upstream: Upstream) -> None:
        super().__init__()
        self._upstream = upstream

    def render(self, request: IRequest) -> int:
        _Relay(self._upstream.open(request)).start()
        return NOT_DONE_YET
