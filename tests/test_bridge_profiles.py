"""
Tests for L{responses_proxy.bridge.profiles}: provider profiles chosen by host, their
effect on converted Codex 0.169 requests, and the C{--provider-config} escape hatch
(validation, precedence over the host profile, and the command line).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import attrs
from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.profiles import (
    DEFAULT_PROFILE,
    MAX_CONFIG_BYTES,
    PROFILES,
    Profile,
    ProviderConfigError,
    applyProfile,
    mergeFields,
    parseFieldPath,
    parseProviderConfig,
    profileFor,
    resolveProfile,
)
from responses_proxy.bridge.request import convertRequest
from responses_proxy.config import StartupError, buildConfig
from tests.support.procs import makeTempDir
from tests.support.proxy import ProxyProcess, failedStart

_FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169.0"
_CHAT = "/v1/chat/completions"


def _fixture(name: str, **fields: Any) -> dict[str, Any]:
    """
    The body of a captured Codex request (C{"C/002"}), with C{fields} set on top.
    """
    with (_FIXTURES / f"{name}-POST.json").open(encoding="utf-8") as f:
        body = json.load(f)["body"]
    body.update(fields)
    return body


def _allFixtures() -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text(encoding="utf-8"))["body"]
        for path in sorted(_FIXTURES.glob("*/0*-POST.json"))
    ]


def _body(request: dict[str, Any], profile: Profile = DEFAULT_PROFILE) -> dict[str, Any]:
    """
    The chat body for C{request} under C{profile}; the request must come out unchanged.
    """
    before = copy.deepcopy(request)
    body = convertRequest(request, profile).body
    assert request == before, "the conversion modified the request"
    json.dumps(body, allow_nan=False)
    return body


def _config(**settings: Any) -> dict[str, Any]:
    return parseProviderConfig(json.dumps(settings).encode("utf-8"))


class HostMatchingTests(SynchronousTestCase):
    """
    L{profileFor} picks a profile from the upstream URL's host.
    """

    def test_knownHosts(self) -> None:
        """Each documented host gets its profile, and the source names the host."""
        cases = [
            ("https://api.openai.com/v1/chat/completions", "openai"),
            ("https://res.openai.azure.com/openai/v1/chat/completions", "azure-openai"),
            ("https://api.deepseek.com/chat/completions", "deepseek"),
            ("https://api.deepseek.com/v1/chat/completions", "deepseek"),
            ("https://open.bigmodel.cn/api/paas/v4/chat/completions", "zhipu"),
            ("https://api.z.ai/api/coding/paas/v4/chat/completions", "zhipu"),
            ("https://api.moonshot.ai/v1/chat/completions", "moonshot"),
            ("https://api.moonshot.cn/v1/chat/completions", "moonshot"),
            ("https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions", "dashscope"),
            (
                "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
                "dashscope",
            ),
            ("https://api.mistral.ai/v1/chat/completions", "mistral"),
            ("https://api.groq.com/openai/v1/chat/completions", "groq"),
            ("https://api.cerebras.ai/v1/chat/completions", "cerebras"),
        ]
        for url, name in cases:
            profile = profileFor(url)
            self.assertEqual(profile.name, name, url)
            host = url.split("/")[2]
            self.assertEqual(profile.source, f"host {host}")
            self.assertIn(host, profile.describe())
            # Everything but the source is the named profile.
            self.assertEqual(attrs.evolve(profile, source=PROFILES[name].source), PROFILES[name])

    def test_caseTrailingDotAndPort(self) -> None:
        """Host names match without regard to case, a trailing dot or the port."""
        for url in (
            "https://API.OpenAI.com/v1/chat/completions",
            "https://api.openai.com./v1/chat/completions",
            "https://api.openai.com:443/v1/chat/completions",
        ):
            self.assertEqual(profileFor(url).name, "openai", url)

    def test_lookalikesAreUnknown(self) -> None:
        """Lookalike and unrelated hosts get the default profile itself."""
        for url in (
            "https://api.openai.com.example.net/v1/chat/completions",
            "https://xapi.openai.com/v1/chat/completions",
            "https://openai.azure.com/openai/v1/chat/completions",
            "https://res.openai.azure.com.example.net/v1/chat/completions",
            "https://notopenai.azure.com/v1/chat/completions",
            "https://api.deepseek.com.cn/v1/chat/completions",
            "http://127.0.0.1:8000/v1/chat/completions",
            "http://localhost:11434/v1/chat/completions",
        ):
            self.assertIs(profileFor(url), DEFAULT_PROFILE, url)

    def test_azureApiVersion(self) -> None:
        """On Azure, a dated api-version from before max_completion_tokens keeps the
        default request; the v1 API and newer versions get it."""
        base = "https://res.openai.azure.com/openai/deployments/d/chat/completions"
        cases = [
            ("", "azure-openai"),
            ("?api-version=2024-09-01-preview", "azure-openai"),
            ("?api-version=2024-12-01-preview", "azure-openai"),
            ("?api-version=2025-04-01-preview", "azure-openai"),
            ("?api-version=2025-06-01", "azure-openai"),
            ("?api-version=2024-08-01-preview", "azure-openai-legacy"),
            ("?api-version=2024-10-21", "azure-openai-legacy"),
            ("?api-version=2024-06-01", "azure-openai-legacy"),
            ("?api-version=preview", "azure-openai-legacy"),
            ("?api-version=2024-13", "azure-openai-legacy"),
        ]
        for query, name in cases:
            self.assertEqual(profileFor(base + query).name, name, query)


class ProfileEffectTests(SynchronousTestCase):
    """
    Each profile's effect on real Codex requests: exactly the documented changes to the
    default conversion, and the request is never modified.
    """

    def assertChanges(
        self, request: dict[str, Any], profile: Profile, change: Any
    ) -> dict[str, Any]:
        """
        The body under C{profile} equals the default body after C{change(expected)}.
        """
        expected = copy.deepcopy(_body(request))
        change(expected)
        body = _body(request, profile)
        self.assertEqual(body, expected)
        return body

    def test_unknownHostChangesNothing(self) -> None:
        """For an unknown host every captured request converts exactly as before."""
        profile = profileFor(f"http://127.0.0.1:9{_CHAT}")
        for request in _allFixtures():
            self.assertEqual(_body(request, profile), _body(request))
        for request in _allFixtures():
            conversion = convertRequest(request, profile)
            self.assertEqual(conversion.dropped, convertRequest(request).dropped)

    def test_openai(self) -> None:
        """OpenAI: developer role, max_completion_tokens, efforts passed as they are."""
        profile = profileFor(f"https://api.openai.com{_CHAT}")
        request = _fixture("C/002", max_output_tokens=4096)

        def change(body: dict[str, Any]) -> None:
            for message in body["messages"]:
                if message["role"] == "system":
                    message["role"] = "developer"
            body["max_completion_tokens"] = body.pop("max_tokens")

        body = self.assertChanges(request, profile, change)
        self.assertEqual(body["messages"][0]["role"], "developer")
        for effort in ("none", "minimal", "low", "medium", "high", "xhigh"):
            body = _body(_fixture("C/001", reasoning={"effort": effort}), profile)
            self.assertEqual(body["reasoning_effort"], effort)

    def test_azure(self) -> None:
        """Azure: max_completion_tokens; the system role and effort mapping stay."""
        profile = profileFor(f"https://res.openai.azure.com/openai/v1{_CHAT}")
        request = _fixture("C/002", max_output_tokens=100)

        def change(body: dict[str, Any]) -> None:
            body["max_completion_tokens"] = body.pop("max_tokens")

        self.assertChanges(request, profile, change)
        body = _body(_fixture("C/001", reasoning={"effort": "xhigh"}), profile)
        self.assertEqual(body["reasoning_effort"], "high")

    def test_azureLegacyChangesNothing(self) -> None:
        """An old Azure api-version converts exactly like the default."""
        profile = profileFor(f"https://r.openai.azure.com/x{_CHAT}?api-version=2024-06-01")
        request = _fixture("C/002", max_output_tokens=100)
        self.assertEqual(_body(request, profile), _body(request))

    def test_deepseekReasoningContentOnToolCalls(self) -> None:
        """DeepSeek: an assistant tool-call message without reasoning gets an empty
        reasoning_content; one with reasoning keeps it."""
        profile = profileFor(f"https://api.deepseek.com{_CHAT}")
        request = _fixture("B/002")

        def change(body: dict[str, Any]) -> None:
            for message in body["messages"]:
                if message["role"] == "assistant" and message.get("tool_calls"):
                    self.assertNotIn("reasoning_content", message)
                    message["reasoning_content"] = ""

        body = self.assertChanges(request, profile, change)
        self.assertIn("", [m.get("reasoning_content") for m in body["messages"]])
        withReasoning = _fixture("C/002")
        self.assertEqual(_body(withReasoning, profile), _body(withReasoning))

    def test_reasoningOff(self) -> None:
        """DeepSeek and Zhipu: effort none switches thinking off; other efforts do not."""
        for host in ("api.deepseek.com", "open.bigmodel.cn", "api.z.ai"):
            profile = profileFor(f"https://{host}{_CHAT}")
            off = _fixture("C/001", reasoning={"effort": "none"})

            def change(body: dict[str, Any]) -> None:
                body["thinking"] = {"type": "disabled"}

            body = self.assertChanges(off, profile, change)
            self.assertNotIn("reasoning_effort", body)
            on = _fixture("C/001")
            self.assertEqual(_body(on, profile), _body(on))

    def test_maxCompletionTokensOnly(self) -> None:
        """Moonshot and Dashscope: max_completion_tokens, nothing else."""
        for host in ("api.moonshot.ai", "dashscope-intl.aliyuncs.com"):
            profile = profileFor(f"https://{host}{_CHAT}")
            request = _fixture("C/002", max_output_tokens=100)

            def change(body: dict[str, Any]) -> None:
                body["max_completion_tokens"] = body.pop("max_tokens")

            self.assertChanges(request, profile, change)

    def test_droppedFields(self) -> None:
        """Mistral, Groq and Cerebras: exactly their refused fields are left out, and the
        notes name them."""
        cases = {
            "api.mistral.ai": ("stream_options", "messages[].reasoning_content"),
            "api.groq.com": ("messages[].reasoning_content",),
            "api.cerebras.ai": ("parallel_tool_calls", "messages[].reasoning_content"),
        }
        request = _fixture("C/002")
        for host, paths in cases.items():
            profile = profileFor(f"https://{host}{_CHAT}")

            def change(body: dict[str, Any], paths: tuple[str, ...] = paths) -> None:
                for path in paths:
                    if path.startswith("messages[]."):
                        for message in body["messages"]:
                            message.pop(path.split(".", 1)[1], None)
                    else:
                        del body[path]

            self.assertChanges(request, profile, change)
            notes = convertRequest(request, profile).dropped
            for path in paths:
                self.assertIn(f"field {path!r} dropped by provider profile", " ".join(notes))


class ApplyProfileTests(SynchronousTestCase):
    """
    The hooks: field paths, dropping, merging, roles, the model map.
    """

    def test_fieldPaths(self) -> None:
        """Paths are keys joined by dots, [] meaning every element; bad ones are refused."""
        self.assertEqual(parseFieldPath("stream_options"), (("stream_options", False),))
        self.assertEqual(
            parseFieldPath("tools[].function.strict"),
            (("tools", True), ("function", False), ("strict", False)),
        )
        for bad in ("", "a..b", "messages[]", "a.b[]", "a b", "[]", "a[0]", ".a", "a."):
            self.assertRaises(ValueError, parseFieldPath, bad)

    def test_dropCopiesWhatItChanges(self) -> None:
        """Dropping inside shared objects copies them: the request's tool schemas stay
        whole, and a path that matches nothing is a silent no-op."""
        request = _fixture("A/001")
        before = copy.deepcopy(request)
        profile = Profile(
            "t",
            dropFields=("tools[].function.parameters.type", "no.such.field", "tool_choice"),
        )
        conversion = convertRequest(request, profile)
        self.assertEqual(request, before)
        functions = [t["function"] for t in conversion.body["tools"]]
        self.assertTrue(functions)
        self.assertFalse([f for f in functions if "type" in f.get("parameters", {})])
        self.assertNotIn("tool_choice", conversion.body)
        notes = " ".join(conversion.dropped)
        self.assertIn("'tools[].function.parameters.type'", notes)
        self.assertNotIn("no.such.field", notes)

    def test_mergeFields(self) -> None:
        """Objects merge key by key; arrays, scalars and null replace; values are copies."""
        body = {"a": {"x": 1, "y": [1]}, "b": [1, 2], "c": 3}
        extra = {"a": {"y": [9], "z": None}, "b": [3], "d": {"e": True}}
        merged = mergeFields(body, extra)
        self.assertEqual(
            merged,
            {"a": {"x": 1, "y": [9], "z": None}, "b": [3], "c": 3, "d": {"e": True}},
        )
        self.assertEqual(body, {"a": {"x": 1, "y": [1]}, "b": [1, 2], "c": 3})
        merged["d"]["e"] = False
        merged["a"]["y"].append(10)
        self.assertEqual(extra, {"a": {"y": [9], "z": None}, "b": [3], "d": {"e": True}})

    def test_extraFieldsLastAndNotShared(self) -> None:
        """Extra fields override what the conversion set, and no two requests share them."""
        profile = Profile("t", extraFields={"stream_options": {"include_usage": False, "x": [1]}})
        first = _body(_fixture("A/001"), profile)
        self.assertEqual(first["stream_options"], {"include_usage": False, "x": [1]})
        first["stream_options"]["x"].append(2)
        second = _body(_fixture("A/001"), profile)
        self.assertEqual(second["stream_options"], {"include_usage": False, "x": [1]})

    def test_developerRoleOnlyRenamesSystem(self) -> None:
        """The developer role renames system messages and nothing else."""
        notes: list[str] = []
        messages = [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "u"},
            {"role": "assistant", "content": "a"},
            {"role": "tool", "tool_call_id": "c", "content": "t"},
        ]
        body = applyProfile({"messages": messages}, Profile("t", developerRole=True), notes)
        self.assertEqual(
            [m["role"] for m in body["messages"]], ["developer", "user", "assistant", "tool"]
        )
        self.assertEqual(notes, [])

    def test_modelMap(self) -> None:
        """The upstream gets the mapped model; the client's reply keeps its own name."""
        profile = Profile("t", modelMap={"gpt-5.5": "deepseek-v4-pro"})
        conversion = convertRequest(_fixture("C/001"), profile)
        self.assertEqual(conversion.body["model"], "deepseek-v4-pro")
        self.assertEqual(conversion.context.model, "gpt-5.5")
        self.assertEqual(convertRequest(_fixture("A/001"), profile).body["model"], "test-model")

    def test_unknownEffortStillNoted(self) -> None:
        """An effort the profile does not map is dropped with the usual note."""
        profile = Profile("t", reasoningEfforts={"high": "max"})
        body = _body(_fixture("C/001", reasoning={"effort": "high"}), profile)
        self.assertEqual(body["reasoning_effort"], "max")
        conversion = convertRequest(_fixture("C/001"), profile)
        self.assertNotIn("reasoning_effort", conversion.body)
        self.assertIn("reasoning.effort dropped: not a known effort", conversion.dropped)


class ProviderConfigTests(SynchronousTestCase):
    """
    L{parseProviderConfig}: every mistake is one clear line.
    """

    def assertRefused(self, data: bytes | str, message: str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8")
        e = self.assertRaises(ProviderConfigError, parseProviderConfig, data)
        self.assertIn(message, str(e))
        self.assertNotIn("\n", str(e))

    def test_notJSON(self) -> None:
        """Bytes that are not a JSON object are refused with where and why."""
        self.assertRefused(b"\xff{}", "not valid UTF-8 (at byte 0)")
        self.assertRefused('{\n  "profile": "openai",\n}', "not valid JSON")
        self.assertRefused('{\n  "profile": "openai",\n}', "line 3 column 1")
        self.assertRefused('{"extraFields": {"x": NaN}}', "NaN is not JSON")
        self.assertRefused('{"modelMap": {}, "modelMap": {}}', "duplicate key 'modelMap'")
        self.assertRefused("[]", "must be a JSON object")
        self.assertRefused(b"{" + b" " * MAX_CONFIG_BYTES + b"}", "larger than")
        self.assertEqual(parseProviderConfig(b"\xef\xbb\xbf{}"), {})

    def test_unknownAndCredentialKeys(self) -> None:
        """Unknown settings are named with the known ones; headers and credentials are
        refused outright."""
        self.assertRefused('{"maxTokens": "x"}', "unknown setting 'maxTokens' (known: profile,")
        for key in ("headers", "Authorization", "api_key", "apiKey", "extra-headers"):
            self.assertRefused(json.dumps({key: {}}), "headers and credentials cannot be")

    def test_wrongTypes(self) -> None:
        """Each setting refuses a value of the wrong type or shape."""
        cases = [
            ({"profile": "nope"}, "'profile' must be one of azure-openai,"),
            ({"profile": 1}, "'profile' must be one of"),
            ({"maxTokensField": 5}, "'maxTokensField' must be a field name"),
            ({"maxTokensField": "max tokens"}, "'maxTokensField' must be a field name"),
            ({"maxTokensField": "messages"}, "'maxTokensField' cannot be 'messages'"),
            ({"developerRole": "yes"}, "'developerRole' must be true or false"),
            ({"reasoningContentOnToolCalls": 1}, "must be true or false"),
            ({"reasoningEffort": ["low"]}, "'reasoningEffort' must be a JSON object"),
            ({"reasoningEffort": {"max": "max"}}, "key 'max' is not an effort"),
            ({"reasoningEffort": {"low": 1}}, "'reasoningEffort.low' must be a non-empty"),
            ({"reasoningEffort": {"low": ""}}, "'reasoningEffort.low' must be a non-empty"),
            ({"reasoningOffFields": []}, "'reasoningOffFields' must be a JSON object"),
            ({"extraFields": "x"}, "'extraFields' must be a JSON object"),
            ({"extraFields": {"stream": False}}, "'extraFields' cannot set 'stream'"),
            ({"extraFields": {"model": "m"}}, "cannot set 'model'"),
            ({"dropFields": "stream_options"}, "'dropFields' must be an array"),
            ({"dropFields": [1]}, "'dropFields' must be an array of field paths"),
            ({"dropFields": ["a..b"]}, "malformed field path 'a..b'"),
            ({"dropFields": ["messages[]"]}, "must end with a field name"),
            ({"dropFields": ["messages[].content"]}, "cannot drop 'messages[].content'"),
            ({"dropFields": ["stream"]}, "cannot drop 'stream'"),
            ({"modelMap": ["a"]}, "'modelMap' must be a JSON object"),
            ({"modelMap": {"a": ""}}, "'modelMap' must map model names"),
            ({"modelMap": {"": "b"}}, "'modelMap' must map model names"),
            ({"modelMap": {"a": None}}, "'modelMap' must map model names"),
        ]
        for settings, message in cases:
            self.assertRefused(json.dumps(settings), message)

    def test_valid(self) -> None:
        """Every setting at once parses to the profile's attribute names."""
        settings = _config(
            profile="deepseek",
            maxTokensField="max_completion_tokens",
            developerRole=True,
            reasoningEffort={"xhigh": "max", "none": None},
            reasoningOffFields={"thinking": {"type": "disabled"}},
            reasoningContentOnToolCalls=False,
            dropFields=["stream_options", "tools[].function.strict"],
            extraFields={"thinking": {"type": "enabled"}},
            modelMap={"gpt-5.5": "deepseek-v4-pro"},
        )
        self.assertEqual(
            sorted(settings),
            sorted(
                [
                    "profile",
                    "maxTokensField",
                    "developerRole",
                    "reasoningEfforts",
                    "reasoningOffFields",
                    "reasoningContentOnToolCalls",
                    "dropFields",
                    "extraFields",
                    "modelMap",
                ]
            ),
        )
        self.assertEqual(settings["dropFields"], ("stream_options", "tools[].function.strict"))


class PrecedenceTests(SynchronousTestCase):
    """
    L{resolveProfile}: the file's settings win over the host profile.
    """

    def test_noSettingsIsTheHostProfile(self) -> None:
        """Without settings, the host decides."""
        url = f"https://api.mistral.ai{_CHAT}"
        self.assertEqual(resolveProfile(url, None), profileFor(url))
        self.assertEqual(resolveProfile(url, {}), profileFor(url))

    def test_fileOverHost(self) -> None:
        """Scalars replace, efforts and models override per key, drops add up, extras
        deep-merge; everything else is inherited from the host profile."""
        url = f"https://api.deepseek.com{_CHAT}"
        settings = _config(
            maxTokensField="max_completion_tokens",
            reasoningEffort={"xhigh": "max"},
            dropFields=["user"],
            reasoningOffFields={"thinking": {"budget": 0}},
            extraFields={"thinking": {"type": "enabled"}},
            modelMap={"a": "b"},
        )
        profile = resolveProfile(url, settings, "--provider-config f.json")
        self.assertEqual(profile.name, "deepseek")
        self.assertEqual(
            profile.describe(), "deepseek (host api.deepseek.com, with --provider-config f.json)"
        )
        self.assertEqual(profile.maxTokensField, "max_completion_tokens")
        self.assertTrue(profile.reasoningContentOnToolCalls)
        self.assertEqual(profile.reasoningEfforts["xhigh"], "max")
        self.assertEqual(profile.reasoningEfforts["medium"], "medium")
        self.assertEqual(profile.dropFields, ("user",))
        self.assertEqual(
            dict(profile.reasoningOffFields), {"thinking": {"type": "disabled", "budget": 0}}
        )
        self.assertEqual(dict(profile.extraFields), {"thinking": {"type": "enabled"}})
        self.assertEqual(dict(profile.modelMap), {"a": "b"})
        # The host's own profile is untouched.
        self.assertEqual(PROFILES["deepseek"].maxTokensField, "max_tokens")

        body = _body(
            _fixture("C/001", max_output_tokens=10, reasoning={"effort": "xhigh"}), profile
        )
        self.assertEqual(body["max_completion_tokens"], 10)
        self.assertEqual(body["reasoning_effort"], "max")
        self.assertEqual(body["thinking"], {"type": "enabled"})

    def test_dropsAddToTheHostProfile(self) -> None:
        """A file's dropFields add to the host's, without duplicates."""
        url = f"https://api.mistral.ai{_CHAT}"
        settings = _config(
            dropFields=["parallel_tool_calls", "stream_options", "parallel_tool_calls"]
        )
        self.assertEqual(
            resolveProfile(url, settings).dropFields,
            ("stream_options", "messages[].reasoning_content", "parallel_tool_calls"),
        )

    def test_namedProfile(self) -> None:
        """A named profile replaces the host's: "default" undoes it, and a proxy host can
        borrow a provider's profile."""
        mistral = f"https://api.mistral.ai{_CHAT}"
        profile = resolveProfile(mistral, _config(profile="default"), "--provider-config f")
        self.assertEqual(profile.name, "default")
        self.assertEqual(profile.dropFields, ())
        self.assertEqual(profile.source, "named in --provider-config f")
        request = _fixture("C/002")
        self.assertEqual(_body(request, profile), _body(request))

        local = "http://127.0.0.1:4000/v1/chat/completions"
        profile = resolveProfile(local, _config(profile="deepseek", developerRole=True))
        self.assertTrue(profile.reasoningContentOnToolCalls)
        self.assertTrue(profile.developerRole)

    def test_unknownHostWithFile(self) -> None:
        """On an unknown host the file's settings apply to the default profile."""
        profile = resolveProfile(
            "http://127.0.0.1:1/v1/chat/completions",
            _config(dropFields=["stream_options"]),
            "--provider-config f",
        )
        self.assertEqual(profile.describe(), "default (--provider-config f)")
        self.assertNotIn("stream_options", _body(_fixture("A/001"), profile))

    def test_documentedExamples(self) -> None:
        """The three examples of docs/providers.md do what the page says."""
        local = "http://127.0.0.1:4000/v1/chat/completions"
        # 1. A model that refuses reasoning_effort.
        profile = resolveProfile(local, _config(dropFields=["reasoning_effort"]))
        self.assertNotIn("reasoning_effort", _body(_fixture("C/001"), profile))
        # 2. DeepSeek behind a gateway, with Codex's model names.
        profile = resolveProfile(
            local, _config(profile="deepseek", modelMap={"gpt-5.5": "deepseek-v4-pro"})
        )
        body = _body(_fixture("C/001", reasoning={"effort": "none"}), profile)
        self.assertEqual(body["model"], "deepseek-v4-pro")
        self.assertEqual(body["thinking"], {"type": "disabled"})
        # 3. Gemini with thinking off.
        profile = resolveProfile(local, _config(reasoningEffort={"none": "none"}))
        body = _body(_fixture("C/001", reasoning={"effort": "none"}), profile)
        self.assertEqual(body["reasoning_effort"], "none")
        self.assertEqual(_body(_fixture("C/001"), profile)["reasoning_effort"], "medium")


class BuildConfigTests(SynchronousTestCase):
    """
    L{buildConfig} resolves the profile before anything starts.
    """

    def build(self, providerConfig: str | None, bridge: bool = True, url: str = "") -> Any:
        return buildConfig(
            port=None,
            serverInfo=None,
            httpShutdown=False,
            upstreamURL=url or f"https://api.groq.com/openai{_CHAT}",
            bridge=bridge,
            dumpDir=None,
            providerConfig=providerConfig,
        )

    def test_hostProfileWithoutFile(self) -> None:
        """Bridge mode gets the host's profile; pass-through keeps the default."""
        self.assertEqual(self.build(None).profile.name, "groq")
        self.assertIs(self.build(None, bridge=False).profile, DEFAULT_PROFILE)

    def test_file(self) -> None:
        """A valid file is applied over the host profile."""
        path = makeTempDir(self) / "provider.json"
        path.write_text(json.dumps({"modelMap": {"a": "b"}}))
        profile = self.build(str(path)).profile
        self.assertEqual(profile.name, "groq")
        self.assertEqual(dict(profile.modelMap), {"a": "b"})
        self.assertIn(f"--provider-config {path}", profile.describe())

    def test_errors(self) -> None:
        """Missing, unreadable or invalid files and pass-through mode are start-up
        errors naming the option."""
        directory = makeTempDir(self)
        bad = directory / "bad.json"
        bad.write_text("{")
        for path, bridge, message in [
            (str(directory / "missing.json"), True, "cannot read --provider-config"),
            (str(directory), True, "cannot read --provider-config"),
            (str(bad), True, f"invalid --provider-config {bad}: not valid JSON"),
            (" ", True, "invalid --provider-config: empty path"),
            (str(bad), False, "--provider-config needs --bridge-to-chat"),
        ]:
            e = self.assertRaises(StartupError, self.build, path, bridge)
            self.assertIn(message, str(e))
            self.assertEqual(e.exitCode, 1)






class CommandLineTests(SynchronousTestCase):
    """
    C{--provider-config} on the real command line.
    """

    def test_badConfigIsOneLine(self) -> None:
        """A bad provider config: one line, exit 1, no key read, nothing listening."""
        directory = makeTempDir(self)
        unknown = directory / "unknown.json"
        unknown.write_text('{"headerz": {}}')
        broken = directory / "broken.json"
        broken.write_text('{"dropFields": ["model"]}')
        cases = [
            (
                ["--bridge-to-chat", "--provider-config", str(directory / "nope.json")],
                "cannot read --provider-config",
            ),
            (["--bridge-to-chat", "--provider-config", str(unknown)], "unknown setting 'headerz'"),
            (["--bridge-to-chat", "--provider-config", str(broken)], "cannot drop 'model'"),
            (["--provider-config", str(unknown)], "needs --bridge-to-chat"),
        ]
        for args, message in cases:
            # No key on stdin: had the key been read, the error would be about it.
            code, line = failedStart(
                self, b"", ["--upstream-url", f"http://127.0.0.1:1{_CHAT}", *args]
            )
            self.assertEqual(code, 1)
            self.assertTrue(line.startswith("Error: "), line)
            self.assertIn(message, line)

    def test_goodConfigStarts(self) -> None:
        """A good provider config starts the bridge, which names its profile once."""
        path = makeTempDir(self) / "provider.json"
        path.write_text(json.dumps({"profile": "deepseek", "modelMap": {"gpt-5.5": "x"}}))
        proxy = ProxyProcess(
            self,
            upstreamURL=f"http://127.0.0.1:1{_CHAT}",
            bridge=True,
            extraArgs=["--provider-config", str(path)],
        ).start()
        err = proxy.process.waitForOutput("listening on")
        line = f"bridge: provider profile deepseek (named in --provider-config {path})"
        self.assertEqual(err.decode().count(line), 1, err)
        self.assertEqual(proxy.shutdown(), 0)
