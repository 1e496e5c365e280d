# -*- test-case-name: tests.test_bridge_textcalls -*-
"""
Tool calls written as text: heal markup in streamed content back into calls.

Open-weight models served without a tool parser write their calls into C{content} in
their own markup (bridge-spec section 6; the formats are catalogued in
docs/text-tool-calls.md). L{TextCallHealer} is a pure, incremental scanner: it takes
content deltas and returns L{TextPiece} and L{CallPiece} items, holding back only what
may still be a marker or a call.
"""

from __future__ import annotations

from responses_proxy.bridge.textcalls._healer import (
    CallPiece,
    Piece,
    TextCallHealer,
    TextPiece,
    healerFor,
)

__all__ = ["CallPiece", "Piece", "TextCallHealer", "TextPiece", "healerFor"]
