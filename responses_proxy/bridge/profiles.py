# -*- test-case-name: tests.test_bridge_profiles -*-
"""
Provider profiles: what is known about a chat upstream from its host, and the user's
overrides from C{--provider-config}.

Chat Completions servers differ in small ways that each break a request outright: one
wants C{max_completion_tokens}, another refuses C{stream_options}, a third refuses
C{reasoning_content} on assistant messages while DeepSeek requires it. A L{Profile} holds
those facts; L{profileFor} picks one from the upstream URL; L{parseProviderConfig} and
L{resolveProfile} let a user adapt to a quirk without a code change. Every table entry is
backed by a public source cited in C{docs/providers.md}; a profile only changes what a
source says. Pure: no I/O, no Twisted, no logging.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

__all__ = [
    "DEFAULT_PROFILE",
    "EFFORTS",
    "MAX_CONFIG_BYTES",
    "PROFILES",
    "Profile",
    "ProviderConfigError",
    "applyProfile",
    "mergeFields",
    "parseFieldPath",
    "parseProviderConfig",
    "profileFor",
    "resolveProfile",
]

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
"""The Responses API's C{reasoning.effort} values."""

_DEFAULT_EFFORTS: Mapping[str, str | None] = {
    "none": None,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}


def _readOnly(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@attrs.frozen(hash=False)
class Profile:
    """
    How to shape the chat request for one kind of upstream.

    @ivar name: a short name, shown at start-up (C{"deepseek"}).
    @ivar source: why this profile applies (C{"host api.deepseek.com"}).
    @ivar maxTokensField: the chat field that carries C{max_output_tokens}.
    @ivar developerRole: send instructions with role C{developer} instead of C{system}.
    @ivar reasoningEfforts: Responses C{reasoning.effort} -> chat C{reasoning_effort};
        L{None} leaves the field out. An effort missing here is dropped with a note.
    @ivar reasoningOffFields: fields merged into the body when the effort is C{"none"}
        (e.g. DeepSeek's C{{"thinking": {"type": "disabled"}}}).
    @ivar reasoningContentOnToolCalls: every assistant message with C{tool_calls}
        carries C{reasoning_content}, empty when the bridge has none.
    @ivar dropFields: field paths removed from the body (see L{parseFieldPath}).
    @ivar extraFields: fields deep-merged into the body last (see L{mergeFields}).
    @ivar modelMap: requested model -> upstream model; unlisted names pass unchanged.
    """

    name: str
    source: str = "no known provider"
    maxTokensField: str = "max_tokens"
    developerRole: bool = False
    reasoningEfforts: Mapping[str, str | None] = attrs.field(
        default=_DEFAULT_EFFORTS, converter=_readOnly
    )
    reasoningOffFields: Mapping[str, Any] = attrs.field(factory=dict, converter=_readOnly)
    reasoningContentOnToolCalls: bool = False
    dropFields: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    extraFields: Mapping[str, Any] = attrs.field(factory=dict, converter=_readOnly)
    modelMap: Mapping[str, str] = attrs.field(factory=dict, converter=_readOnly)

    def describe(self) -> str:
        """
        @return: one line for the start-up log: the name and where it came from.
        """
        return f"{self.name} ({self.source})"

    def upstreamModel(self, model: str) -> str:
        """
        @return: the model name to send upstream for the requested C{model}.
        """
        return self.modelMap.get(model, model)


DEFAULT_PROFILE = Profile("default")
"""Unknown hosts: the request of bridge-spec section 1, unchanged."""

# Named profiles. Each deviation from the default is backed by the source cited beside it
# and in docs/providers.md.
PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "default": DEFAULT_PROFILE,
        # platform.openai.com/docs/api-reference/chat/create: max_tokens "is deprecated in
        # favor of max_completion_tokens, and is not compatible with o-series models";
        # developer messages "replace the previous system messages" with o1 and newer;
        # reasoning_effort takes none, minimal, low, medium, high and xhigh.
        "openai": Profile(
            "openai",
            maxTokensField="max_completion_tokens",
            developerRole=True,
            reasoningEfforts={effort: effort for effort in EFFORTS},
        ),
        # learn.microsoft.com .../openai/how-to/reasoning: reasoning models "will only
        # work with the max_completion_tokens parameter" (added in 2024-09-01-preview).
        # The system role is kept: it "will be treated as a developer message" by them,
        # while developer is refused by older api-versions and some models.
        "azure-openai": Profile("azure-openai", maxTokensField="max_completion_tokens"),
        # An Azure api-version that predates max_completion_tokens: nothing changes.
        "azure-openai-legacy": Profile("azure-openai-legacy"),
        # api-docs.deepseek.com/guides/thinking_mode: after a tool call, the assistant's
        # reasoning_content "must be passed back to the API" (400 otherwise); thinking is
        # switched off with {"thinking": {"type": "disabled"}}.
        "deepseek": Profile(
            "deepseek",
            reasoningContentOnToolCalls=True,
            reasoningOffFields={"thinking": {"type": "disabled"}},
        ),
        # docs.z.ai/api-reference/llm/chat-completion, docs.bigmodel.cn: the `thinking`
        # object ({"type": "enabled" | "disabled"}) turns GLM's chain of thought on or off.
        "zhipu": Profile("zhipu", reasoningOffFields={"thinking": {"type": "disabled"}}),
        # platform.kimi.ai/docs/api/chat: max_tokens "Deprecated, please refer to
        # max_completion_tokens".
        "moonshot": Profile("moonshot", maxTokensField="max_completion_tokens"),
        # alibabacloud.com notice "Changes to Certain Model Fields" (Model Studio, 2026):
        # max_tokens is replaced by max_completion_tokens on the OpenAI-compatible API.
        "dashscope": Profile("dashscope", maxTokensField="max_completion_tokens"),
        # Mistral refuses unknown fields (422 extra_forbidden): stream_options
        # (openai/openai-agents-python#442) and assistant reasoning_content
        # (charmbracelet/crush#1590).
        "mistral": Profile(
            "mistral", dropFields=("stream_options", "messages[].reasoning_content")
        ),
        # console.groq.com/docs/openai: unsupported fields are a 400; assistant
        # reasoning_content is refused ("property 'reasoning_content' is unsupported",
        # janhq/jan#8136, tashfeenahmed/freellmapi#1070).
        "groq": Profile("groq", dropFields=("messages[].reasoning_content",)),
        # inference-docs.cerebras.ai/resources/openai: parallel_tool_calls is a 400;
        # assistant reasoning_content is refused (Kilo-Org/kilocode#10375).
        "cerebras": Profile(
            "cerebras", dropFields=("parallel_tool_calls", "messages[].reasoning_content")
        ),
    }
)

# host -> profile name. An entry starting with "." matches any subdomain.
_HOSTS: tuple[tuple[str, str], ...] = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure-openai"),
    ("api.deepseek.com", "deepseek"),
    ("open.bigmodel.cn", "zhipu"),
    ("api.z.ai", "zhipu"),
    ("api.moonshot.ai", "moonshot"),
    ("api.moonshot.cn", "moonshot"),
    ("dashscope.aliyuncs.com", "dashscope"),
    ("dashscope-intl.aliyuncs.com", "dashscope"),
    ("api.mistral.ai", "mistral"),
    ("api.groq.com", "groq"),
    ("api.cerebras.ai", "cerebras"),
)

_API_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})(-preview)?$")


def _azureProfile(query: str) -> str:
    """
    The Azure profile for an URL's query: C{max_completion_tokens} came with the
    2024-09-01-preview api-version and is not in the 2024-10-21 GA spec, so a dated
    api-version before those keeps the default request. The v1 API has no api-version.
    """
    versions = parse_qs(query).get("api-version")
    if not versions:
        return "azure-openai"
    match = _API_VERSION.match(versions[-1])
    if match is None:
        return "azure-openai-legacy"
    date, preview = match.groups()
    if (preview and date >= "2024-09-01") or date > "2024-10-21":
        return "azure-openai"
    return "azure-openai-legacy"


def profileFor(upstreamURL: str) -> Profile:
    """
    The profile for an upstream, from its host (and, for Azure, its api-version).

    @param upstreamURL: the chat completions URL.
    @return: a named profile whose C{source} names the host, or L{DEFAULT_PROFILE}.
    """
    parts = urlsplit(upstreamURL)
    host = (parts.hostname or "").lower().rstrip(".")
    for pattern, name in _HOSTS:
        if host == pattern or (pattern.startswith(".") and host.endswith(pattern)):
            if name == "azure-openai":
                name = _azureProfile(parts.query)
            return attrs.evolve(PROFILES[name], source=f"host {host}")
    return DEFAULT_PROFILE


# -- applying a profile -------------------------------------------------------------------

_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\[\])?$")


@lru_cache(maxsize=256)
def parseFieldPath(path: str) -> tuple[tuple[str, bool], ...]:
    """
    Parse a field path: keys joined by C{.}; C{key[]} means every element of that array.

    C{"stream_options"}, C{"stream_options.include_usage"},
    C{"messages[].reasoning_content"}, C{"tools[].function.strict"}.

    @return: (key, each element?) per segment.
    @raise ValueError: a malformed path, or one that ends in C{[]}.
    """
    if not isinstance(path, str) or not path:
        raise ValueError("a field path must be a non-empty string")
    steps = []
    for segment in path.split("."):
        if not _SEGMENT.match(segment):
            raise ValueError(f"malformed field path {path!r}")
        steps.append((segment.removesuffix("[]"), segment.endswith("[]")))
    if steps[-1][1]:
        raise ValueError(f"field path {path!r} must end with a field name, not []")
    return tuple(steps)


def _drop(node: Any, steps: tuple[tuple[str, bool], ...], i: int) -> tuple[Any, int]:
    """
    Remove the field at C{steps[i:]} below C{node}, copying what it changes (the body
    shares objects with the request, which must stay untouched).

    @return: the new node (C{node} itself when nothing matched) and how many were removed.
    """
    key, each = steps[i]
    if not isinstance(node, dict) or key not in node:
        return node, 0
    if i == len(steps) - 1:
        copied = dict(node)
        del copied[key]
        return copied, 1
    child = node[key]
    total = 0
    if each:
        if not isinstance(child, list):
            return node, 0
        newChild: Any = list(child)
        for j, item in enumerate(child):
            newItem, count = _drop(item, steps, i + 1)
            if count:
                newChild[j] = newItem
                total += count
    else:
        newChild, total = _drop(child, steps, i + 1)
    if not total:
        return node, 0
    copied = dict(node)
    copied[key] = newChild
    return copied, total


def mergeFields(body: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """
    Deep-merge C{extra} into C{body}: objects merge key by key, anything else (arrays,
    strings, numbers, booleans, C{null}) replaces. C{extra}'s values are copied, so no
    request shares mutable state with the profile.

    @return: the merged body (a new dict; C{body} is not modified).
    """
    merged = dict(body)
    for key, value in extra.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            merged[key] = mergeFields(current, value)
        else:
            merged[key] = copy.deepcopy(_plain(value))
    return merged


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def applyProfile(body: dict[str, Any], profile: Profile, notes: list[str]) -> dict[str, Any]:
    """
    The profile's changes to a converted chat body, in this order: the developer role,
    C{reasoning_content} on tool-call messages, dropped fields, extra fields.

    The model name, C{max_tokens} field and reasoning effort are applied during the
    conversion itself (L{responses_proxy.bridge.request.convertRequest}).

    @param body: the chat body; its messages are the conversion's own dicts.
    @param notes: gains a note per dropped field path (names only, never content).
    @return: the body to send (possibly a new dict).
    """
    messages = body.get("messages")
    rewrite = profile.developerRole or profile.reasoningContentOnToolCalls
    if isinstance(messages, list) and rewrite:
        for message in messages:
            role = message.get("role")
            if role == "system" and profile.developerRole:
                message["role"] = "developer"
            elif (
                role == "assistant"
                and profile.reasoningContentOnToolCalls
                and message.get("tool_calls")
                and "reasoning_content" not in message
            ):
                message["reasoning_content"] = ""
    for path in profile.dropFields:
        body, count = _drop(body, parseFieldPath(path), 0)
        if count:
            notes.append(f"field {path!r} dropped by provider profile {profile.name!r}")
    if profile.extraFields:
        body = mergeFields(body, profile.extraFields)
    return body


# -- the user's provider config -----------------------------------------------------------


class ProviderConfigError(ValueError):
    """
    A provider config the proxy refuses; C{str()} is one line naming the problem.
    """


MAX_CONFIG_BYTES = 1024 * 1024
"""The largest C{--provider-config} file accepted."""
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Paths the bridge itself needs: dropping them would break every request or its reply.
_PROTECTED_PATHS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "messages[].role",
        "messages[].content",
        "messages[].tool_calls",
        "messages[].tool_call_id",
    }
)
_PROTECTED_EXTRA = frozenset({"model", "messages", "stream"})
# Compared lower-cased without "-" and "_".
_CREDENTIAL_KEYS = frozenset(
    {"headers", "extraheaders", "httpheaders", "authorization", "apikey", "key", "token"}
)

_KEYS = (
    "profile",
    "maxTokensField",
    "developerRole",
    "reasoningEffort",
    "reasoningOffFields",
    "reasoningContentOnToolCalls",
    "dropFields",
    "extraFields",
    "modelMap",
)


def _refuseConstant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _uniqueKeys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _object(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProviderConfigError(f"{key!r} must be a JSON object")
    return value


def parseProviderConfig(data: bytes) -> dict[str, Any]:
    """
    Parse and validate the contents of a C{--provider-config} file.

    The file is one JSON object; every key is optional: C{profile} (a name from
    L{PROFILES}, instead of the one chosen by host), C{maxTokensField},
    C{developerRole}, C{reasoningEffort} (effort -> chat value or C{null}),
    C{reasoningOffFields}, C{reasoningContentOnToolCalls}, C{dropFields} (field paths),
    C{extraFields}, C{modelMap}. Headers are not configurable: the key custody is strict.

    @param data: the file's bytes.
    @return: the validated settings, under L{Profile}'s attribute names (and C{profile}).
    @raise ProviderConfigError: anything wrong, as one line.
    """
    if len(data) > MAX_CONFIG_BYTES:
        raise ProviderConfigError(f"larger than {MAX_CONFIG_BYTES} bytes")
    problem = None
    try:
        text = bytes(data).decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        raise ProviderConfigError(f"not valid UTF-8 (at byte {e.start})") from None
    try:
        value = json.loads(text, parse_constant=_refuseConstant, object_pairs_hook=_uniqueKeys)
    except json.JSONDecodeError as e:
        problem = f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
    except (ValueError, RecursionError) as e:
        problem = f"not valid JSON: {e}"
    if problem is not None:
        raise ProviderConfigError(problem)
    if not isinstance(value, dict):
        raise ProviderConfigError("must be a JSON object")

    settings: dict[str, Any] = {}
    for key, item in value.items():
        if key.lower().replace("-", "").replace("_", "") in _CREDENTIAL_KEYS:
            raise ProviderConfigError(
                f"{key!r} is not allowed: headers and credentials cannot be configured "
                "(the API key only ever comes from stdin)"
            )
        if key not in _KEYS:
            raise ProviderConfigError(f"unknown setting {key!r} (known: {', '.join(_KEYS)})")
        settings.update(_setting(key, item))
    return settings


def _setting(key: str, value: Any) -> dict[str, Any]:
    """
    One validated setting, under the L{Profile} attribute it overrides.
    """
    if key == "profile":
        if not isinstance(value, str) or value not in PROFILES:
            raise ProviderConfigError(f"'profile' must be one of {', '.join(sorted(PROFILES))}")
        return {"profile": value}
    if key == "maxTokensField":
        if not isinstance(value, str) or not _FIELD_NAME.match(value):
            raise ProviderConfigError(
                "'maxTokensField' must be a field name such as 'max_completion_tokens'"
            )
        if value in _PROTECTED_EXTRA:
            raise ProviderConfigError(f"'maxTokensField' cannot be {value!r}")
        return {"maxTokensField": value}
    if key in ("developerRole", "reasoningContentOnToolCalls"):
        if not isinstance(value, bool):
            raise ProviderConfigError(f"{key!r} must be true or false")
        return {key: value}
    if key == "reasoningEffort":
        efforts = _object(value, key)
        for effort, mapped in efforts.items():
            if effort not in EFFORTS:
                raise ProviderConfigError(
                    f"'reasoningEffort' key {effort!r} is not an effort "
                    f"(known: {', '.join(EFFORTS)})"
                )
            if mapped is not None and (not isinstance(mapped, str) or not mapped):
                raise ProviderConfigError(
                    f"'reasoningEffort.{effort}' must be a non-empty string or null"
                )
        return {"reasoningEfforts": dict(efforts)}
    if key in ("reasoningOffFields", "extraFields"):
        fields = _object(value, key)
        for name in fields:
            if name in _PROTECTED_EXTRA:
                raise ProviderConfigError(
                    f"{key!r} cannot set {name!r}: the bridge needs it as it is"
                )
        return {key: copy.deepcopy(fields)}
    if key == "dropFields":
        if not isinstance(value, list):
            raise ProviderConfigError("'dropFields' must be an array of field paths")
        for path in value:
            if not isinstance(path, str):
                raise ProviderConfigError("'dropFields' must be an array of field paths")
            try:
                parseFieldPath(path)
            except ValueError as e:
                raise ProviderConfigError(f"'dropFields': {e}") from None
            if path in _PROTECTED_PATHS:
                raise ProviderConfigError(f"'dropFields' cannot drop {path!r}: the bridge needs it")
        return {"dropFields": tuple(value)}
    # modelMap
    models = _object(value, key)
    for name, target in models.items():
        if not name or not isinstance(target, str) or not target:
            raise ProviderConfigError("'modelMap' must map model names to non-empty model names")
    return {"modelMap": dict(models)}


def resolveProfile(
    upstreamURL: str, settings: Mapping[str, Any] | None, origin: str = "--provider-config"
) -> Profile:
    """
    The effective profile: the one named in C{settings} (or chosen by host), with the
    settings applied on top. The file wins on every conflict: scalar settings replace;
    C{reasoningEffort} and C{modelMap} override per key; C{dropFields} adds to the
    profile's; C{extraFields} and C{reasoningOffFields} deep-merge over the profile's.
    To start from nothing, name C{"profile": "default"}.

    @param settings: from L{parseProviderConfig}, or L{None} for the host profile alone.
    @param origin: where the settings came from, for L{Profile.source}.
    """
    if not settings:
        return profileFor(upstreamURL)
    if "profile" in settings:
        base = PROFILES[settings["profile"]]
        source = f"named in {origin}"
    else:
        base = profileFor(upstreamURL)
        source = f"{base.source}, with {origin}" if base is not DEFAULT_PROFILE else origin
    changes: dict[str, Any] = {"source": source}
    for key in ("maxTokensField", "developerRole", "reasoningContentOnToolCalls"):
        if key in settings:
            changes[key] = settings[key]
    if "reasoningEfforts" in settings:
        changes["reasoningEfforts"] = {**base.reasoningEfforts, **settings["reasoningEfforts"]}
    if "modelMap" in settings:
        changes["modelMap"] = {**base.modelMap, **settings["modelMap"]}
    if "dropFields" in settings:
        changes["dropFields"] = tuple(dict.fromkeys(base.dropFields + settings["dropFields"]))
    for key in ("extraFields", "reasoningOffFields"):
        if key in settings:
            changes[key] = mergeFields(dict(getattr(base, key)), settings[key])
    return attrs.evolve(base, **changes)
