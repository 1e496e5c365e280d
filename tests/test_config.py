"""
Tests for L{responses_proxy.config}: the validated command line and limits.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.config import DEFAULT_UPSTREAM, Limits, StartupError, buildConfig

KEY = b"Bearer sk-TESTKEY0123456789abcdefXYZ"


class ConfigTests(SynchronousTestCase):
    """
    L{buildConfig}: every unusable command line is one clear error.
    """

    def build(self, **kw: object):
        args = dict(
            port=None,
            serverInfo=None,
            httpShutdown=False,
            upstreamURL=None,
            bridge=False,
            dumpDir=None,
        )
        args.update(kw)
        return buildConfig(**args)  # type: ignore[arg-type]

    def test_defaults(self) -> None:
        """Ephemeral port and the OpenAI Responses URL."""
        config = self.build()
        self.assertEqual((config.port, config.upstreamURL), (0, DEFAULT_UPSTREAM))

    def test_badPorts(self) -> None:
        """Ports outside 0..65535 or not numbers are refused."""
        for port in ["-1", "65536", "abc", "", "1e3", "٣"]:
            self.assertRaises(StartupError, self.build, port=port)

    def test_badURLs(self) -> None:
        """Non-http schemes, no host, credentials, fragments are refused."""
        for url in [
            "ftp://x/v1",
            "file:///etc/passwd",
            "http://",
            "api.openai.com/v1/responses",
            "https://user:pw@host/v1",
            "https://host/v1#frag",
            "https://host:99999/x",
            "https://ho st/x",
            "",
            "http://[::1]:11434/v1/chat/completions",
        ]:
            self.assertRaises(StartupError, self.build, upstreamURL=url)
        with self.assertRaises(StartupError) as caught:
            self.build(upstreamURL="http://[::1]:8/v1/responses")
        self.assertIn("IPv6 address literal", str(caught.exception))

    def test_queryKept(self) -> None:
        """Azure's api-version query survives."""
        url = "https://x.openai.azure.com/openai/deployments/d/responses?api-version=2025-04-01-preview"
        self.assertEqual(self.build(upstreamURL=url).upstreamURL, url)

    def test_bridgeNeedsURL(self) -> None:
        """Bridge mode without --upstream-url is a start-up error; an odd path warns."""
        e = self.assertRaises(StartupError, self.build, bridge=True)
        self.assertIn("--upstream-url", str(e))
        config = self.build(bridge=True, upstreamURL="http://127.0.0.1:1/v1/chat")
        self.assertEqual(len(config.warnings), 1)
        config = self.build(bridge=True, upstreamURL="http://127.0.0.1:1/v1/chat/completions")
        self.assertEqual(config.warnings, ())

    def test_tuning(self) -> None:
        """The tuning variable overrides limits and rejects unknown names."""
        limits = Limits.fromTuning("headerTimeout=0.5, maxBodyBytes=1024")
        self.assertEqual((limits.headerTimeout, limits.maxBodyBytes), (0.5, 1024))
        self.assertRaises(StartupError, Limits.fromTuning, "nope=1")
        self.assertRaises(StartupError, Limits.fromTuning, "headerTimeout=-1")
        self.assertRaises(StartupError, Limits.fromTuning, "headerTimeout=x")
