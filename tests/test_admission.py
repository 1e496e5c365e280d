"""
Tests for L{responses_proxy.admission}: the exact request line and the Host, Origin and
Sec-Fetch-Site rules.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy import admission
from responses_proxy import admission as policy

KEY = b"Bearer sk-TESTKEY0123456789abcdefXYZ"


class PolicyTests(SynchronousTestCase):
    """
    L{policy}: the exact request line and the Host/Origin rules.
    """

    def test_onlyExactResponsesTarget(self) -> None:
        """Only the raw bytes C{POST /v1/responses} are a responses request."""
        self.assertTrue(policy.isResponsesRequest(b"POST", b"/v1/responses"))
        for method, target in [
            (b"GET", b"/v1/responses"),
            (b"post", b"/v1/responses"),
            (b"POST", b"/v1/responses/"),
            (b"POST", b"/v1/responses?x=1"),
            (b"POST", b"/v1/responses?"),
            (b"POST", b"/v1/%72esponses"),
            (b"POST", b"/v1/./responses"),
            (b"POST", b"/v1//responses"),
            (b"POST", b"//v1/responses"),
            (b"POST", b"/V1/responses"),
            (b"POST", b"http://127.0.0.1/v1/responses"),
            (b"POST", b"*"),
            (b"POST", b"/v1/responses#x"),
        ]:
            self.assertFalse(policy.isResponsesRequest(method, target), (method, target))

    def test_shutdownTarget(self) -> None:
        """Only C{GET /shutdown} exactly."""
        self.assertTrue(policy.isShutdownRequest(b"GET", b"/shutdown"))
        self.assertFalse(policy.isShutdownRequest(b"POST", b"/shutdown"))
        self.assertFalse(policy.isShutdownRequest(b"GET", b"/shutdown?now"))
        self.assertFalse(policy.isShutdownRequest(b"HEAD", b"/shutdown"))

    def test_loopbackHosts(self) -> None:
        """localhost, 127/8 and [::1], with any port, are loopback names."""
        for host in [
            b"localhost",
            b"LOCALHOST:8080",
            b"127.0.0.1",
            b"127.0.0.1:1",
            b"127.1.2.3:65535",
            b"[::1]",
            b"[::1]:9000",
        ]:
            self.assertTrue(policy.isLoopbackHost(host), host)

    def test_nonLoopbackHosts(self) -> None:
        """DNS names (rebinding), other addresses and malformed values are refused."""
        for host in [
            b"",
            b"example.com",
            b"localhost.example.com",
            b"127.0.0.1.nip.io",
            b"10.0.0.1",
            b"0.0.0.0",
            b"127.1",
            b"0177.0.0.1",
            b"127.0.0.01",
            b"127.0.0.256",
            b"[::2]",
            b"[::1",
            b"127.0.0.1:",
            b"127.0.0.1:99999",
            b"127.0.0.1:80x",
            b"127.0.0.1 ",
            b"localhost:0x50",
            "l\u00f6calhost".encode(),
        ]:
            self.assertFalse(policy.isLoopbackHost(host), host)

    def test_refusalReasons(self) -> None:
        """Missing or duplicate Host, Origin and Sec-Fetch-Site are refused."""
        self.assertIsNone(policy.refusalReason([b"127.0.0.1:1"], False, False))
        self.assertIsNotNone(policy.refusalReason(None, False, False))
        self.assertIsNotNone(policy.refusalReason([], False, False))
        self.assertIsNotNone(policy.refusalReason([b"127.0.0.1", b"127.0.0.1"], False, False))
        self.assertIsNotNone(policy.refusalReason([b"evil.test"], False, False))
        self.assertIsNotNone(policy.refusalReason([b"localhost"], True, False))
        self.assertIsNotNone(policy.refusalReason([b"localhost"], False, True))


class AdmitTests(SynchronousTestCase):
    """
    L{admission.admit}: the whole rule, with the reason each refusal is logged with.
    """

    def admit(
        self,
        method=b"POST",
        target=b"/v1/responses",
        hosts=(b"127.0.0.1:8",),
        origin=False,
        fetchSite=False,
        shutdown=False,
    ):
        return admission.admit(method, target, list(hosts), origin, fetchSite, shutdown)

    def test_served(self) -> None:
        """The exact responses request, and GET /shutdown when enabled, are served."""
        self.assertIsNone(self.admit())
        self.assertIsNone(self.admit(b"GET", b"/shutdown", shutdown=True))

    def test_reasons(self) -> None:
        """Each refusal is a 403 with its own reason."""
        cases = [
            (self.admit(target=b"/v1/models"), "target not allowed"),
            (self.admit(method=b"GET"), "target not allowed"),
            (self.admit(b"GET", b"/shutdown"), "shutdown is disabled"),
            (self.admit(hosts=(b"example.com",)), "Host is not a loopback name"),
            (self.admit(origin=True), "Origin header present"),
            (self.admit(fetchSite=True), "Sec-Fetch-Site header present"),
        ]
        for refusal, reason in cases:
            self.assertEqual((refusal.status, refusal.reason), (403, reason))
