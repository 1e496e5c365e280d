"""
Tests for L{responses_proxy.bridge.reasoning}: the bridge's own C{encrypted_content} token.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.reasoning import decodeReasoning, encodeReasoning


class ReasoningTokenTests(SynchronousTestCase):
    """
    The token round trip, and tokens the bridge did not make.
    """

    def test_roundTrip(self) -> None:
        """Any text, non-ASCII and newlines included, comes back unchanged."""
        for text in ["", "plan", "第一步：\n读文件 🙂", "x" * 100_000]:
            token = encodeReasoning(text)
            self.assertTrue(token.startswith("rpxr1."))
            self.assertEqual(decodeReasoning(token), text)

    def test_foreignTokensIgnored(self) -> None:
        """OpenAI's own encrypted content, damaged tokens and non-strings decode to None."""
        for token in [
            "gAAAAABo-openai-encrypted",
            "rpxr1.%%%",
            "rpxr1." + "//8=",  # valid base64, not UTF-8
            None,
            42,
            {"rpxr1.": "x"},
        ]:
            self.assertIsNone(decodeReasoning(token), token)
