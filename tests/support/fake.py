# -*- test-case-name: tests.test_fakeupstream -*-
"""
The client side of the fake upstream (L{tests.fakeupstream}), and TLS material for it.

    fake = FakeUpstream(self).start()
    fake.enqueue({"sse": [...]}, {"status": 500})
    ... run the proxy with --upstream-url fake.url() ...
    [req] = fake.waitRequests(1)
    self.assertEqual(req.headerValues("authorization"), ["Bearer sk-test"])
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support import http
from tests.support.procs import PYTHON, ManagedProcess, WaitTimeout, makeTempDir, pythonEnv


@dataclass
class TLSFiles:
    """
    PEM files for a TLS server.

    @ivar cert: the certificate.
    @ivar key: its private key.
    @ivar ca: the CA certificate that signed it, or L{None} for a self-signed one.
    """

    cert: Path
    key: Path
    ca: Path | None = None

    def clientContext(self) -> ssl.SSLContext:
        """
        @return: a client context that trusts this server (its CA, or the certificate).
        """
        return ssl.create_default_context(cafile=str(self.ca or self.cert))


def _name(commonName: str) -> Any:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])


def _newKey() -> Any:
    return ec.generate_private_key(ec.SECP256R1())


def _writePair(directory: Path, stem: str, cert: Any, key: Any) -> tuple[Path, Path]:

    certPath = directory / f"{stem}.pem"
    keyPath = directory / f"{stem}-key.pem"
    certPath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyPath.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certPath, keyPath


def _leafBuilder(subject: Any, issuer: Any, publicKey: Any) -> Any:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(publicKey)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )


def makeSelfSigned(directory: Path) -> TLSFiles:
    """
    A self-signed certificate for C{localhost} and 127.0.0.1, issued by no CA: a
    verifying client (the proxy) must refuse it.

    @param directory: where to write C{self-signed.pem} and C{self-signed-key.pem}.
    """

    key = _newKey()
    name = _name("localhost")
    cert = _leafBuilder(name, name, key.public_key()).sign(key, hashes.SHA256())
    certPath, keyPath = _writePair(directory, "self-signed", cert, key)
    return TLSFiles(certPath, keyPath)


def makeCAAndLeaf(directory: Path) -> TLSFiles:
    """
    A test CA and a server certificate it signed for C{localhost} and 127.0.0.1. Point
    the proxy's C{SSL_CERT_FILE} at C{.ca} to make it trust the server.

    @param directory: where to write C{ca.pem}, C{ca-key.pem}, C{server.pem},
        C{server-key.pem}.
    """

    caKey = _newKey()
    caName = _name("crap test CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    caCert = (
        x509.CertificateBuilder()
        .subject_name(caName)
        .issuer_name(caName)
        .public_key(caKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(caKey.public_key()), critical=False
        )
        .sign(caKey, hashes.SHA256())
    )
    caPath, _ = _writePair(directory, "ca", caCert, caKey)
    key = _newKey()
    leaf = (
        _leafBuilder(_name("localhost"), caName, key.public_key())
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()),
            critical=False,
        )
        .sign(caKey, hashes.SHA256())
    )
    certPath, keyPath = _writePair(directory, "server", leaf, key)
    return TLSFiles(certPath, keyPath, caPath)


class Recorded:
    """
    One request the fake upstream received.

    @ivar index: its position in the record (0 first).
    @ivar method: e.g. C{"POST"}.
    @ivar target: the raw request-target, e.g. C{"/v1/responses"}.
    @ivar headers: C{(name, value)} pairs as received (Twisted capitalises names).
    @ivar body: the body.
    @ivar conn: the id of the upstream connection it came on.
    @ivar t: when it arrived (C{time.monotonic()}, comparable across processes).
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.index: int = data["index"]
        self.method: str = data["method"]
        self.target: str = data["target"]
        self.headers: list[tuple[str, str]] = [(k, v) for k, v in data["headers"]]
        self.body: bytes = base64.b64decode(data["body_b64"])
        self.text: str | None = data["body"]
        self.conn: int = data["conn"]
        self.t: float = data["t"]

    def headerValues(self, name: str) -> list[str]:
        """
        @return: every value of header C{name} (case-insensitive), in order.
        """
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header(self, name: str) -> str | None:
        """
        @return: the first value of header C{name}, or L{None}.
        """
        values = self.headerValues(name)
        return values[0] if values else None

    def json(self) -> Any:
        """
        @return: the body decoded as JSON.
        """
        return json.loads(self.body)

    def __repr__(self) -> str:
        # Never the headers or the body: they hold the key in proxy tests.
        return f"<Recorded #{self.index} {self.method} {self.target!r} conn={self.conn}>"


class FakeUpstream:
    """
    The fake upstream process, driven through its control port.

    @ivar port: the upstream port (after L{start}).
    @ivar controlPort: the control port.
    @ivar pid: its process id.
    @ivar tls: its L{TLSFiles}, if it serves HTTPS.
    @ivar process: the L{ManagedProcess}.
    """

    def __init__(self, testCase: Any, directory: Path | None = None) -> None:
        """
        @param testCase: the test case; its cleanup stops the process.
        @param directory: where the info file and outputs go (default: a temporary one).
        """
        self.testCase = testCase
        self.dir = directory if directory is not None else makeTempDir(testCase, "fake-")
        self.port = 0
        self.controlPort = 0
        self.pid = 0
        self.tls: TLSFiles | None = None
        self.process: ManagedProcess | None = None

    def start(
        self, tls: TLSFiles | None = None, timeout: float = 15.0, record: bool = True
    ) -> FakeUpstream:
        """
        Start the process and wait until both ports are bound.

        @param tls: serve HTTPS with this certificate and key.
        @param record: keep every request (C{False}: only count them, C{--no-record}).
        @param timeout: seconds to wait for it to be ready.
        @return: C{self}.
        """
        infoFile = self.dir / "fake-info.json"
        argv = [PYTHON, "-m", "tests.fakeupstream", "--info", str(infoFile)]
        if tls is not None:
            argv += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        if not record:
            argv.append("--no-record")
        self.tls = tls
        self.process = ManagedProcess(
            argv, env=pythonEnv(), stdin=None, directory=self.dir, name="fakeupstream"
        )
        self.testCase.addCleanup(self.stop)
        self.process.start()
        info = self.process.waitForJSONFile(infoFile, timeout)
        self.port = info["port"]
        self.controlPort = info["control_port"]
        self.pid = info["pid"]
        return self

    def url(self, path: str = "/v1/responses", host: str = "127.0.0.1") -> str:
        """
        @return: the upstream URL for C{path} (https when started with TLS).
        """
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    # -- control ------------------------------------------------------------------------

    def _control(
        self, method: str, path: str, body: Any = None, timeout: float = 10.0,
        expect: tuple[int, ...] = (200,),
    ) -> http.Response:
        resp = http.request(self.controlPort, method, path, body, timeout=timeout)
        if resp.status not in expect:
            raise AssertionError(
                f"fake upstream control {method} {path}: {resp.status} {resp.body!r}"
            )
        return resp

    def enqueue(self, *specs: dict[str, Any]) -> None:
        """
        Queue reply specs; each upstream request takes the next one.
        """
        self._control("POST", "/replies", list(specs))

    def name(self, **specs: dict[str, Any]) -> None:
        """
        Register named replies: a request with the header C{X-Fake-Reply: NAME} gets the
        spec named NAME (every time; the queue is left alone).
        """
        self._control("POST", "/named", specs)

    def setDefault(self, spec: dict[str, Any]) -> None:
        """
        Set the reply used when the queue is empty.
        """
        self._control("POST", "/default", spec)

    def reset(self) -> None:
        """
        Clear the queue, the records and the connection log; restore the default reply
        and close all gates.
        """
        self._control("POST", "/reset", {})

    def release(self, gate: str) -> None:
        """
        Open gate C{gate}: replies waiting at it (a C{{"gate": NAME}} chunk or
        C{then_gate}) go on; later ones pass straight through.
        """
        self._control("POST", "/release?" + urlencode({"gate": gate}), {})

    def requests(self) -> list[Recorded]:
        """
        @return: every request received since the start (or the last L{reset}).
        """
        return [Recorded(r) for r in self._control("GET", "/requests").json()]

    def connections(self) -> dict[str, Any]:
        """
        @return: C{{"open", "total", "events": [{"conn", "event", "t"}], "requests":
            [{"index", "conn", "outcome", "sent", "paused"}]}}.
        """
        return self._control("GET", "/connections").json()

    def _wait(self, query: dict[str, Any], timeout: float, what: str) -> dict[str, Any]:
        query = dict(query, timeout=timeout)
        resp = self._control(
            "GET", "/wait?" + urlencode(query), timeout=timeout + 10, expect=(200, 408)
        )
        if resp.status == 408:
            raise WaitTimeout(f"fake upstream: {what} within {timeout} s: {resp.json()}")
        return resp.json()

    def waitRequests(self, n: int, timeout: float = 10.0) -> list[Recorded]:
        """
        Wait until at least C{n} requests have been received.

        @return: all the requests received.
        """
        self._wait({"requests": n}, timeout, f"no {n} requests")
        return self.requests()

    def waitClosed(self, conn: int, timeout: float = 10.0) -> None:
        """
        Wait until upstream connection C{conn} has closed.
        """
        self._wait({"closed": conn}, timeout, f"connection {conn} not closed")

    def waitOutcome(self, index: int, timeout: float = 10.0) -> str:
        """
        Wait until request C{index} is C{"finished"} or C{"lost"}.

        @return: the outcome.
        """
        return self._wait({"outcome": index}, timeout, f"request {index} still pending")[
            "outcome"
        ]

    def waitPaused(self, index: int, timeout: float = 10.0) -> dict[str, Any]:
        """
        Wait until backpressure has paused the C{generate} body of request C{index}.

        @return: its entry in C{connections()["requests"]} (with C{sent}, C{paused}).
        """
        return self._wait({"paused": index}, timeout, f"request {index} never paused")

    def shutdown(self, timeout: float = 10.0) -> int:
        """
        Stop it with C{POST /shutdown} on the control port and wait for it to exit.

        @return: its exit status.
        """
        self._control("POST", "/shutdown", {})
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """
        Stop the process (SIGTERM, then SIGKILL). Idempotent.

        @return: its exit status.
        """
        if self.process is None:
            return None
        return self.process.stop(timeout)
