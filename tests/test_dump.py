"""
Tests for L{responses_proxy.dump}: C{--dump-dir} records.
"""

from __future__ import annotations

import json
import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy import dump
from responses_proxy.redact import StreamRedactor

KEY = b"Bearer sk-TESTKEY0123456789abcdefXYZ"


class DumpTests(SynchronousTestCase):
    """
    L{dump}: numbered 0600 JSON files, redacted.
    """

    def test_exchangeFiles(self) -> None:
        """Request and response files, credentials redacted, key scrubbed from bodies."""
        from tests.support.procs import makeTempDir

        directory = str(makeTempDir(self) / "dumps")
        redactor = StreamRedactor(memoryview(KEY)[7:])
        dumper = dump.Dumper(directory, redactor.redact)
        exchange = dumper.begin()
        exchange.writeRequest(
            b"POST",
            b"/v1/responses",
            [(b"Authorization", [b"Bearer client"]), (b"Cookie", [b"c=1"])],
            b'{"model": "m"}',
            "http://up/v1/responses",
        )
        exchange.responseStarted(401, [(b"Set-Cookie", [b"s=1"]), (b"Content-Type", [b"x"])])
        exchange.upstreamData(b'{"echo": "' + KEY + b'"}')
        exchange.finish("complete")
        names = sorted(os.listdir(directory))
        self.assertEqual(len(names), 2)
        self.assertTrue(names[0].startswith("000001-") and names[0].endswith("-request.json"))
        for name in names:
            path = os.path.join(directory, name)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            text = open(path, encoding="utf-8").read()
            self.assertNotIn(KEY[7:].decode(), text)
        request = json.load(open(os.path.join(directory, names[0])))
        self.assertEqual(request["body"], {"model": "m"})
        self.assertIn(["Authorization", "[REDACTED]"], request["headers"])
        self.assertIn(["Cookie", "[REDACTED]"], request["headers"])
        response = json.load(open(os.path.join(directory, names[1])))
        self.assertEqual(response["status"], 401)
        self.assertIn(["Set-Cookie", "[REDACTED]"], response["headers"])
        self.assertEqual(response["body"], {"echo": "Bearer [REDACTED]"})
        self.assertEqual(
            dump.Dumper(directory, redactor.redact).begin()._prefix.split(os.sep)[-1][:6], "000002"
        )
