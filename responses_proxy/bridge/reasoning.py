# -*- test-case-name: tests.test_bridge_reasoning -*-
"""
The bridge's own C{encrypted_content} token: reasoning text that Codex carries back.

Chat providers with thinking modes want an assistant turn's C{reasoning_content} sent
back on the next request. Codex echoes a reasoning item's C{encrypted_content} verbatim,
so the bridge stores the full text there, in a versioned token it can recognise; tokens
it did not make (a real OpenAI upstream's) decode to L{None} and are ignored.
"""

from __future__ import annotations

import base64
import binascii

_PREFIX = "rpxr1."


def encodeReasoning(text: str) -> str:
    """
    Wrap reasoning text as an opaque token for C{encrypted_content}.

    @param text: the full reasoning text of one item.
    @return: C{"rpxr1."} followed by URL-safe base64 of the UTF-8 text.
    """
    return _PREFIX + base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def decodeReasoning(token: object) -> str | None:
    """
    Recover reasoning text from a token made by L{encodeReasoning}.

    @param token: any C{encrypted_content} value a client sent back.
    @return: the text, or L{None} when the token is not ours or is damaged.
    """
    if not isinstance(token, str) or not token.startswith(_PREFIX):
        return None
    try:
        # validate=True: a damaged token is refused, not decoded from what is left of it.
        raw = base64.b64decode(token[len(_PREFIX) :].encode("ascii"), b"-_", validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        return None
