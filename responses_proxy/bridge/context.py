# -*- test-case-name: tests.test_bridge_request -*-
"""
What the request conversion hands to the stream conversion.

Across requests the bridge keeps only stored responses (L{responses_proxy.bridge.state});
within one request this is the only state the two directions share: how chat-side tool names
map back to Responses items, and which request fields every response object must echo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

ToolKind = Literal["function", "custom", "local_shell"]


@attrs.frozen
class ToolTarget:
    """
    The Responses-side identity of one chat-side function.

    @ivar kind: C{"function"} becomes a C{function_call} item, C{"custom"} a
        C{custom_tool_call} (input unwrapped from C{{"input": ...}}), C{"local_shell"} a
        C{local_shell_call}.
    @ivar name: the tool's Responses name (without its namespace).
    @ivar namespace: the namespace to restore on C{function_call} items, if any.
    """

    kind: ToolKind
    name: str
    namespace: str | None = None


@attrs.frozen
class BridgeContext:
    """
    Per-request facts needed to build Responses events from a chat reply.

    @ivar model: the model the client asked for (echoed as the response's C{model}).
    @ivar stream: whether the client asked for a stream.
    @ivar tools: chat function name -> L{ToolTarget}; names not in it come back as plain
        C{function_call} items under the name the upstream used.
    @ivar healTextCalls: chat function name -> its JSON schema C{parameters} (or L{None}),
        for the tools whose calls may be written as text in C{content} (bridge-spec
        section 6); empty when the request offered no tools or said C{tool_choice: none},
        and then content is never touched.
    @ivar echo: Responses request fields the response object repeats: always C{tools}
        (as requested), C{tool_choice}, C{parallel_tool_calls}, C{previous_response_id}
        (null when absent) and C{store}; and, when the request
        had them, C{instructions}, C{max_output_tokens}, C{temperature}, C{top_p},
        C{reasoning}, C{text}, C{metadata}, C{user}.
    """

    model: str
    stream: bool
    tools: Mapping[str, ToolTarget] = attrs.field(factory=dict)
    echo: Mapping[str, Any] = attrs.field(factory=dict)
    healTextCalls: Mapping[str, Mapping[str, Any] | None] = attrs.field(factory=dict)
