"""
Tests for the fake upstream (L{tests.fakeupstream}) and the blocking helpers in
L{tests.support}: the infrastructure every integration test stands on.

Each test runs its own fake upstream process on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import ssl
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.support import http, wire
from tests.support.events import replyScript, textReply
from tests.support.fake import FakeUpstream, makeCAAndLeaf, makeSelfSigned
from tests.support.procs import WaitTimeout, makeTempDir

SECRET = "sk-fake-secret-0123456789"


def _post(fake: FakeUpstream, body: bytes = b'{"x": 1}', **kw: object) -> wire.RawResponse:
    return wire.parseResponse(
        http.rawExchange(fake.port, http.buildRequest("POST", "/v1/responses", body), **kw)
    )


class FakeUpstreamTests(SynchronousTestCase):
    """
    The fake upstream's replies, recording and control endpoints.
    """

    def setUp(self) -> None:
        self.fake = FakeUpstream(self).start()

    def test_info(self) -> None:
        """
        The info file names two different ports and the serving process.
        """
        self.assertNotEqual(self.fake.port, self.fake.controlPort)
        self.assertEqual(self.fake.pid, self.fake.process.pid)
        self.assertEqual(self.fake.url(), f"http://127.0.0.1:{self.fake.port}/v1/responses")

    def test_defaultReply(self) -> None:
        """
        With an empty queue every request gets 200 C{{"ok": true}} as chunked JSON.
        """
        resp = _post(self.fake)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("content-type"), "application/json")
        self.assertTrue(resp.chunked)
        self.assertTrue(resp.complete)
        self.assertEqual(resp.json(), {"ok": True})

    def test_queueOrderAndDefault(self) -> None:
        """
        Queued specs answer requests in order; then the default, which can be changed.
        """
        self.fake.enqueue({"body": "first"}, {"status": 201, "body": "second"})
        self.assertEqual(_post(self.fake).body, b"first")
        second = _post(self.fake)
        self.assertEqual((second.status, second.body), (201, b"second"))
        self.assertEqual(_post(self.fake).json(), {"ok": True})
        self.fake.setDefault({"status": 503, "body": "busy"})
        third = _post(self.fake)
        self.assertEqual((third.status, third.body), (503, b"busy"))
        self.fake.enqueue({"body": "queued"})
        self.assertEqual(_post(self.fake).body, b"queued")
        self.assertEqual(_post(self.fake).status, 503)

    def test_headersContentLengthAndB64(self) -> None:
        """
        Status, headers (duplicates kept, C{content-type} overridable), C{Content-Length}
        framing and binary bodies are as specified.
        """
        raw = bytes(range(256))
        self.fake.enqueue(
            {
                "status": 418,
                "headers": [["x-a", "1"], ["x-a", "2"], ["content-type", "text/plain"]],
                "body_b64": base64.b64encode(raw).decode(),
                "content_length": True,
            },
            {"status": 302, "headers": [["location", "http://127.0.0.1:1/x"]]},
        )
        resp = _post(self.fake)
        self.assertEqual(resp.status, 418)
        self.assertEqual(resp.headerValues("x-a"), ["1", "2"])
        self.assertEqual(resp.header("content-type"), "text/plain")
        self.assertEqual(resp.header("content-length"), "256")
        self.assertFalse(resp.chunked)
        self.assertEqual(resp.body, raw)
        redirect = _post(self.fake)
        self.assertEqual(redirect.status, 302)
        self.assertEqual(redirect.header("location"), "http://127.0.0.1:1/x")

    def test_invalidSpec(self) -> None:
        """
        A malformed spec is refused at enqueue time with the reason.
        """
        for spec in [
            {"bogus": 1},
            {"body": "a", "sse": []},
            {"then": "explode"},
            {"chunks": [{"data": "a", "b64": "YQ=="}]},
            {"generate": {"bytes": -1}},
        ]:
            e = self.assertRaises(AssertionError, self.fake.enqueue, spec)
            self.assertIn("400", str(e))
        self.assertEqual(_post(self.fake).json(), {"ok": True})

    def test_chunksWithDelayArriveSeparately(self) -> None:
        """
        Chunks are written one by one; a delayed chunk arrives after its delay, while the
        earlier ones are already with the client.
        """
        self.fake.enqueue({"chunks": [{"data": "first"}, {"data": "second", "delay": 0.3}]})
        with http.openStream(self.fake.port, body={"x": 1}) as stream:
            self.assertEqual(stream.status, 200)
            first = stream.readChunk(5)
            t0 = time.monotonic()
            second = stream.readChunk(5)
            waited = time.monotonic() - t0
            self.assertEqual((first, second), (b"first", b"second"))
            self.assertGreater(waited, 0.2)
            self.assertIsNone(stream.readChunk(5))
            self.assertTrue(stream.complete)

    def test_gates(self) -> None:
        """
        A C{gate} chunk holds the rest of the body until the test releases it; so does
        C{then_gate} before the C{then} action; a released gate stays open.
        """
        self.fake.enqueue(
            {"chunks": [{"data": "before"}, {"gate": "g1"}, {"data": "after"}],
             "then_gate": "g2"},
            {"chunks": [{"gate": "g1"}, {"data": "open"}]},
        )
        with http.openStream(self.fake.port) as stream:
            self.assertEqual(stream.readChunk(5), b"before")
            self.assertRaises(http.ReadTimeout, stream.readChunk, 0.2)
            self.fake.release("g1")
            self.assertEqual(stream.readChunk(5), b"after")
            self.assertRaises(http.ReadTimeout, stream.readChunk, 0.2)
            self.assertFalse(stream.complete)
            self.fake.release("g2")
            self.assertIsNone(stream.readChunk(5))
            self.assertTrue(stream.complete)
        self.assertEqual(_post(self.fake).body, b"open")

    def test_sseFraming(self) -> None:
        """
        Each SSE value is one C{data:} event (strings raw), optionally with C{event:}
        lines, with the SSE content type; C{sse_delay} spaces the events.
        """
        events = [{"type": "response.created", "response": {"id": "r"}}, "[DONE]"]
        self.fake.enqueue(
            {"sse": events},
            {"sse": events, "event_lines": True, "sse_delay": 0.2},
        )
        plain = _post(self.fake)
        self.assertEqual(plain.header("content-type"), "text/event-stream")
        self.assertEqual(
            plain.body,
            b'data: {"type":"response.created","response":{"id":"r"}}\n\ndata: [DONE]\n\n',
        )
        with http.openStream(self.fake.port) as stream:
            got = list(stream.iterEvents(5))
        self.assertEqual([e.event for e in got], ["response.created", None])
        self.assertEqual(got[0].json(), events[0])
        self.assertEqual(got[1].data, "[DONE]")
        self.assertGreater(got[1].t - got[0].t, 0.15)

    def test_replyScriptFixture(self) -> None:
        """
        A captured Codex reply script plays back as the SSE stream it describes.
        """
        [spec] = replyScript("A/reply-script.json")
        self.fake.enqueue(spec)
        with http.openStream(self.fake.port) as stream:
            got = [e.json() for e in stream.iterEvents(5)]
        self.assertEqual(got, spec["sse"])
        self.assertEqual(got[-1]["type"], "response.completed")

    def test_generateFastReader(self) -> None:
        """
        C{generate} streams exactly N bytes of SSE-looking filler in K-byte chunks.
        """
        self.fake.enqueue({"generate": {"bytes": 100_000, "chunk": 1000}})
        resp = _post(self.fake)
        self.assertTrue(resp.complete)
        self.assertEqual(len(resp.body), 100_000)
        self.assertTrue(resp.body.startswith(b"data: xxx"))
        self.assertEqual(len(wire.parseSSE(resp.body.decode())), 100)
        self.assertEqual(self.fake.waitOutcome(0), "finished")

    def test_generateSlowReaderIsPaused(self) -> None:
        """
        With a reader that stops reading, backpressure pauses the generator long before
        it has written everything; it finishes once the reader drains the stream.
        """
        total = 32 * 1024 * 1024
        self.fake.enqueue({"generate": {"bytes": total, "chunk": 16384}})
        with http.openStream(self.fake.port, rcvbuf=16384) as stream:
            paused = self.fake.waitPaused(0, timeout=10)
            self.assertGreaterEqual(paused["paused"], 1)
            self.assertLess(paused["sent"], 8 * 1024 * 1024)
            self.assertEqual(paused["outcome"], "pending")
            received = sum(len(c) for c in stream.iterChunks(10))
            self.assertTrue(stream.complete)
        self.assertEqual(received, total)
        self.assertEqual(self.fake.waitOutcome(0), "finished")
        self.assertEqual(self.fake.connections()["requests"][0]["sent"], total)

    def test_generateEventsAndProse(self) -> None:
        """
        C{event} packs several events of that size into each chunk; C{prose} fills them
        with text; the last chunk is cut to the total.
        """
        self.fake.enqueue({"generate": {"bytes": 10_000, "chunk": 4096, "event": 1024,
                                        "prose": True}})
        with http.openStream(self.fake.port) as stream:
            chunks = list(stream.iterChunks(5))
        self.assertEqual([len(c) for c in chunks], [4096, 4096, 1808])
        events = wire.parseSSE(b"".join(chunks))
        self.assertEqual(len(events), 9)
        self.assertTrue(all(len(e.data) == 1016 for e in events))
        self.assertTrue(events[0].data.startswith("You are Codex"))

    def test_manyEventsAtOnce(self) -> None:
        """
        Thousands of events due at once go out together, each its own HTTP chunk.
        """
        values = [{"n": i} for i in range(5000)]
        self.fake.enqueue({"sse": values})
        with http.openStream(self.fake.port) as stream:
            chunks = list(stream.iterChunks(10))
        self.assertEqual(len(chunks), 5000)
        self.assertEqual([e.json() for e in wire.parseSSE(b"".join(chunks))], values)

    def test_namedReplies(self) -> None:
        """
        X-Fake-Reply picks a named reply every time, leaving the queue alone; an unknown
        name is a 500.
        """
        self.fake.name(small={"body": "named", "content_length": True})
        self.fake.enqueue({"body": "queued"})
        request = http.buildRequest("POST", "/v1/responses", b"{}", [("X-Fake-Reply", "small")])
        for _ in range(2):
            resp = wire.parseResponse(http.rawExchange(self.fake.port, request))
            self.assertEqual((resp.body, resp.header("content-length")), (b"named", "5"))
        self.assertEqual(_post(self.fake).body, b"queued")
        unknown = http.buildRequest("POST", "/", b"{}", [("X-Fake-Reply", "nope")])
        self.assertEqual(wire.parseResponse(http.rawExchange(self.fake.port, unknown)).status,
                         500)
        self.assertRaises(AssertionError, self.fake.name, bad={"status": "x"})

    def test_thenHang(self) -> None:
        """
        C{then: hang} sends the body but never ends the response; when the client goes
        away the request is lost and its connection closes.
        """
        self.fake.enqueue({"body": "partial", "then": "hang"})
        with http.openStream(self.fake.port) as stream:
            self.assertEqual(stream.readChunk(5), b"partial")
            self.assertRaises(http.ReadTimeout, stream.readChunk, 0.2)
            self.assertEqual(self.fake.connections()["requests"][0]["outcome"], "pending")
        self.assertEqual(self.fake.waitOutcome(0), "lost")
        [req] = self.fake.requests()
        self.fake.waitClosed(req.conn)

    def test_thenReset(self) -> None:
        """
        C{then: reset} aborts the TCP connection: the client sees a reset and a body
        without its last chunk.
        """
        self.fake.enqueue({"chunks": [{"data": "event-1"}, {"gate": "g"}], "then": "reset"})
        with http.openStream(self.fake.port) as stream:
            self.assertEqual(stream.readChunk(5), b"event-1")
            self.fake.release("g")
            e = self.assertRaises(http.TruncatedBody, stream.readChunk, 5)
            self.assertIn("reset", str(e))
            self.assertTrue(stream.conn.reset)
            self.assertFalse(stream.complete)
        self.assertEqual(self.fake.waitOutcome(0), "lost")

    def test_thenResetAfterBodyDeliversBody(self) -> None:
        """
        C{then: reset} right after the body still delivers the body before the reset.
        """
        self.fake.enqueue({"chunks": [{"data": "data: partial\n\n"}], "then": "reset"})
        with http.openStream(self.fake.port) as stream:
            self.assertEqual(stream.readEvent(5).data, "partial")
            self.assertRaises(http.TruncatedBody, stream.readEvent, 5)
            self.assertFalse(stream.complete)

    def test_thenClose(self) -> None:
        """
        C{then: close} closes the connection (FIN) without the final chunk: a truncated
        chunked body; with C{content_length} the length is that of the whole body.
        """
        self.fake.enqueue(
            {"body": "cut", "then": "close"},
            {"chunks": [{"data": "abc"}, {"data": "def"}], "content_length": True},
        )
        resp = _post(self.fake)
        self.assertTrue(resp.chunked)
        self.assertFalse(resp.complete)
        self.assertEqual(resp.body, b"cut")
        self.assertNotIn(b"0\r\n\r\n", resp.raw)
        self.assertEqual(self.fake.waitOutcome(0), "lost")
        fixed = _post(self.fake)
        self.assertEqual((fixed.header("content-length"), fixed.body), ("6", b"abcdef"))
        self.assertTrue(fixed.complete)

    def test_neverRespondAndDelayHeaders(self) -> None:
        """
        C{never_respond} records the request and sends nothing; C{delay_headers} sends
        the head only after its delay.
        """
        self.fake.enqueue({"never_respond": True}, {"delay_headers": 0.3, "body": "late"})
        conn = http.RawConnection(self.fake.port)
        conn.send(http.buildRequest("POST", "/v1/responses", b"{}"))
        self.fake.waitRequests(1)
        self.assertRaises(http.ReadTimeout, conn.recvSome, 0.2)
        conn.close()
        self.assertEqual(self.fake.waitOutcome(0), "lost")
        t0 = time.monotonic()
        self.assertEqual(_post(self.fake).body, b"late")
        self.assertGreater(time.monotonic() - t0, 0.25)

    def test_echo(self) -> None:
        """
        C{echo} answers with the recorded request, headers included.
        """
        self.fake.enqueue({"echo": True, "content_length": True})
        resp = http.post(
            self.fake.port, body=b'{"q": 1}', headers={"Authorization": "Bearer " + SECRET}
        )
        echoed = resp.json()
        self.assertEqual(echoed["method"], "POST")
        self.assertEqual(echoed["body"], '{"q": 1}')
        self.assertIn(["Authorization", "Bearer " + SECRET], echoed["headers"])

    def test_recording(self) -> None:
        """
        Method, raw target, headers in order with duplicates, body bytes and the
        connection are recorded; two requests on one keep-alive connection share it.
        """
        conn = http.RawConnection(self.fake.port)
        conn.send(
            b"POST /v1/responses?a=%2F&b HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Dup: one\r\nAuthorization: Bearer " + SECRET.encode() + b"\r\n"
            b"x-dup: two\r\nContent-Length: 3\r\n\r\n\xff\x00\x01"
        )
        self.assertEqual(conn.readResponse().status, 200)
        conn.send(http.buildRequest("GET", "//odd/../path", b""))
        self.assertEqual(conn.readResponse().status, 200)
        conn.close()
        self.assertEqual(_post(self.fake).status, 200)
        first, second, third = self.fake.requests()
        self.assertEqual((first.method, first.target), ("POST", "/v1/responses?a=%2F&b"))
        self.assertEqual(first.headerValues("x-dup"), ["one", "two"])
        self.assertEqual(first.header("authorization"), "Bearer " + SECRET)
        self.assertEqual(first.body, b"\xff\x00\x01")
        self.assertIsNone(first.text)
        self.assertEqual((second.method, second.target), ("GET", "//odd/../path"))
        self.assertEqual(first.conn, second.conn)
        self.assertNotEqual(first.conn, third.conn)
        self.assertLessEqual(first.t, second.t)
        self.assertNotIn(SECRET, repr(first))

    def test_connections(self) -> None:
        """
        Connections are counted and logged as they open and close, and each request's
        outcome is tracked.
        """
        self.assertEqual(self.fake.connections()["total"], 0)
        idle = http.RawConnection(self.fake.port)
        self.assertEqual(_post(self.fake).status, 200)
        [req] = self.fake.waitRequests(1)
        self.fake.waitClosed(req.conn)
        info = self.fake.connections()
        self.assertEqual(info["total"], 2)
        self.assertEqual(info["open"], 1)
        self.assertEqual(
            [(e["conn"], e["event"]) for e in info["events"]][-1], (req.conn, "close")
        )
        self.assertEqual(info["requests"], [
            {"index": 0, "conn": req.conn, "outcome": "finished", "sent": 12, "paused": 0}
        ])
        idleConn = next(e["conn"] for e in info["events"] if e["conn"] != req.conn)
        idle.close()
        self.fake.waitClosed(idleConn)
        self.assertEqual(self.fake.connections()["open"], 0)

    def test_waits(self) -> None:
        """
        The wait endpoints answer as soon as the event happens (long poll), and time out
        with an error that says what was awaited.
        """
        e = self.assertRaises(WaitTimeout, self.fake.waitRequests, 1, 0.2)
        self.assertIn("1 requests", str(e))
        self.assertRaises(WaitTimeout, self.fake.waitOutcome, 0, 0.1)
        self.assertRaises(WaitTimeout, self.fake.waitClosed, 99, 0.1)
        results: list[object] = []
        waiter = threading.Thread(
            target=lambda: results.append(self.fake.waitRequests(2, 10))
        )
        waiter.start()
        try:
            self.fake.enqueue({"never_respond": True})
            conn = http.RawConnection(self.fake.port)
            conn.send(http.buildRequest("POST", "/v1/responses", b"{}"))
            self.assertEqual(_post(self.fake).status, 200)
        finally:
            waiter.join(15)
        self.assertEqual(len(results[0]), 2)  # type: ignore[arg-type]
        self.assertEqual(self.fake.waitOutcome(1), "finished")
        conn.abort()
        self.assertEqual(self.fake.waitOutcome(0), "lost")

    def test_reset(self) -> None:
        """
        C{reset} empties the queue, the records and the connection log, and restores the
        default reply.
        """
        self.fake.setDefault({"status": 500})
        self.fake.enqueue({"body": "x"})
        _post(self.fake)
        self.fake.reset()
        self.assertEqual(self.fake.requests(), [])
        info = self.fake.connections()
        self.assertEqual((info["total"], info["events"], info["requests"]), (0, [], []))
        self.assertEqual(_post(self.fake).json(), {"ok": True})

    def test_neverLogsRequests(self) -> None:
        """
        Nothing from a request's headers or body reaches the fake's output.
        """
        self.fake.enqueue({"echo": True})
        http.post(self.fake.port, body=SECRET, headers={"Authorization": "Bearer " + SECRET,
                                                         "User-Agent": SECRET})
        self.fake.shutdown()
        self.assertNotIn(SECRET.encode(), self.fake.process.stderr())
        self.assertNotIn(SECRET.encode(), self.fake.process.stdout())

    def test_shutdownEndpoint(self) -> None:
        """
        C{POST /shutdown} on the control port answers, then the process exits 0.
        """
        self.assertEqual(self.fake.shutdown(), 0)

    def test_sigterm(self) -> None:
        """
        SIGTERM stops it cleanly.
        """
        self.fake.process.sendSignal(signal.SIGTERM)
        self.assertEqual(self.fake.process.wait(10), 0)


class NoRecordTests(SynchronousTestCase):
    """
    C{--no-record}: requests are answered and counted, none is kept.
    """

    def test_countsWithoutKeeping(self) -> None:
        """Three requests: counted, answered, not recorded."""
        fake = FakeUpstream(self).start(record=False)
        for _ in range(3):
            self.assertEqual(_post(fake).json(), {"ok": True})
        self.assertEqual(fake.requests(), [])
        connections = fake.connections()
        self.assertEqual(connections["request_count"], 3)
        self.assertEqual(connections["total"], 3)


class FakeUpstreamTLSTests(SynchronousTestCase):
    """
    The HTTPS listener and the test certificates.
    """

    def test_caSignedLeaf(self) -> None:
        """
        With a CA-signed certificate the fake serves HTTPS that a client trusting the CA
        accepts, by IP address and by name, and a default client refuses.
        """
        tls = makeCAAndLeaf(makeTempDir(self))
        fake = FakeUpstream(self).start(tls=tls)
        self.assertEqual(fake.url(), f"https://127.0.0.1:{fake.port}/v1/responses")
        resp = http.post(fake.port, tls=tls.clientContext())
        self.assertEqual(resp.json(), {"ok": True})
        # by name: connect to 127.0.0.1, verify the certificate for "localhost"
        raw = socket.create_connection(("127.0.0.1", fake.port), 10)
        with tls.clientContext().wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(http.buildRequest("GET", "/by-name", host="localhost"))
            data = b""
            for _ in range(100):  # bounded; each recv has the 10 s timeout
                if b"\r\n0\r\n\r\n" in data:
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        self.assertEqual(wire.parseResponse(data).json(), {"ok": True})
        self.assertEqual(fake.requests()[-1].target, "/by-name")
        e = self.assertRaises(ssl.SSLCertVerificationError, http.post, fake.port,
                              tls=ssl.create_default_context())
        self.assertIn("unable to get local issuer certificate", str(e))

    def test_selfSigned(self) -> None:
        """
        A self-signed certificate is served, and a default verifying client refuses it.
        """
        tls = makeSelfSigned(makeTempDir(self))
        self.assertIsNone(tls.ca)
        fake = FakeUpstream(self).start(tls=tls)
        e = self.assertRaises(ssl.SSLCertVerificationError, http.post, fake.port,
                              tls=ssl.create_default_context())
        self.assertIn("self-signed certificate", str(e))
        self.assertEqual(fake.requests(), [])


class EventBuilderTests(SynchronousTestCase):
    """
    The Responses reply specs of L{tests.support.events}.
    """

    def test_textReplyShape(self) -> None:
        """textReply is a whole Responses stream: created, the message, completed."""
        spec = textReply("hi", "resp_9")
        types = [e["type"] for e in spec["sse"]]
        self.assertEqual(types[0], "response.created")
        self.assertEqual(types[-1], "response.completed")
        done = [e for e in spec["sse"] if e["type"] == "response.output_item.done"]
        self.assertEqual(done[0]["item"]["content"][0]["text"], "hi")
        json.dumps(spec)
