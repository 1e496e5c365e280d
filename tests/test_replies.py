"""
Tests for L{responses_proxy.replies}: the one JSON error shape and raw channel replies.
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.replies import errorBody, errorDocument, rawResponse


class ErrorBodyTests(SynchronousTestCase):
    """
    The Responses API's error shape.
    """

    def test_shape(self) -> None:
        """Every field is present, L{None} where absent."""
        self.assertEqual(
            json.loads(errorBody("too slow", "proxy_error", "upstream_timeout")),
            {
                "error": {
                    "message": "too slow",
                    "type": "proxy_error",
                    "code": "upstream_timeout",
                    "param": None,
                }
            },
        )

    def test_nonASCIIKept(self) -> None:
        """Upstream messages in other languages stay readable UTF-8."""
        body = errorBody("上下文过长", "invalid_request_error", None, "input")
        self.assertIn("上下文过长".encode(), body)
        self.assertEqual(
            json.loads(body), errorDocument("上下文过长", "invalid_request_error", None, "input")
        )


class RawResponseTests(SynchronousTestCase):
    """
    Replies the channel writes before a request object exists.
    """

    def test_emptyBody(self) -> None:
        """A closing reply with a zero length and no content type."""
        self.assertEqual(
            rawResponse(408, b"Request Timeout"),
            b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )

    def test_jsonBody(self) -> None:
        """A body gets its length and the JSON content type."""
        raw = rawResponse(413, b"Payload Too Large", b'{"error":{}}')
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Length: 12", head)
        self.assertIn(b"Content-Type: application/json", head)
        self.assertEqual(body, b'{"error":{}}')
