# -*- test-case-name: tests.test_bridge_names -*-
"""
Chat-side function names for Responses tools.

Chat Completions knows only flat function names matching C{[A-Za-z0-9_-]{1,64}}, while
Responses tools may sit in a namespace (C{mcp__server__}, C{multi_agent_v1}) and MCP tool
names may be long or contain dots. The flattening is a pure function of the namespace and
the name, so it is the same in every request: a compaction request sends C{tools: []} but
still carries namespaced calls in its history, and those must keep the names the model saw
before. The way back (chat name -> namespace and name) is the request's
L{BridgeContext.tools<responses_proxy.bridge.context.BridgeContext>}, never a guess.
"""

from __future__ import annotations

import hashlib
import re

MAX_NAME_LENGTH = 64
"""The longest function name OpenAI-compatible chat servers accept."""

_VALID_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_DIGEST_LENGTH = 10


def joinToolName(namespace: str | None, name: str) -> str:
    """
    Join a namespace and a tool name the way the model should read them.

    @param namespace: the Responses namespace, or L{None} / C{""} for a flat tool.
    @param name: the tool's name inside the namespace.
    @return: C{"<namespace>__<name>"}, without a doubled separator when the namespace
        already ends in C{"__"} (MCP namespaces are C{mcp__<server>__}).
    """
    if not namespace:
        return name
    if namespace.endswith("__"):
        return namespace + name
    return namespace + "__" + name


def isValidChatName(name: str) -> bool:
    """
    @return: whether C{name} can be sent to a chat server unchanged.
    """
    return _VALID_NAME.match(name) is not None


def flattenToolName(namespace: str | None, name: str) -> str:
    """
    The chat function name for a (namespace, name) pair, the same in every request.

    A joined name that is a valid chat name is used as is. Otherwise the alias is the
    joined name with invalid characters replaced by C{_}, cut so that C{_} and ten hex
    digits of its SHA-256 fit in 64 characters: readable for the model, unique in
    practice, and derived from the full name alone (never from the other tools of the
    request).

    @param namespace: the Responses namespace, or L{None} / C{""}.
    @param name: the tool's name.
    @return: a name matching C{[A-Za-z0-9_-]{1,64}}.
    """
    full = joinToolName(namespace, name)
    if _VALID_NAME.match(full) is not None:
        return full
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()
    prefix = _INVALID_CHAR.sub("_", full)[: MAX_NAME_LENGTH - _DIGEST_LENGTH - 1]
    return prefix + "_" + digest[:_DIGEST_LENGTH]
