# -*- test-case-name: tests.test_config -*-
"""
The validated configuration both entry points run with, and start-up errors.

Everything that can be wrong with the command line is found here, before any socket
is bound or the key is read, and reported as one line.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import attrs

from responses_proxy.bridge.profiles import (
    DEFAULT_PROFILE,
    MAX_CONFIG_BYTES,
    Profile,
    ProviderConfigError,
    parseProviderConfig,
    resolveProfile,
)

DEFAULT_UPSTREAM = "https://api.openai.com/v1/responses"
TUNING_ENV = "CODEX_PROXY_TUNING"


class StartupError(Exception):
    """
    The proxy cannot start; the message is one line for stderr.

    @ivar exitCode: the process exit status to use.
    """

    def __init__(self, message: str, exitCode: int = 1) -> None:
        super().__init__(message)
        self.exitCode = exitCode


# Request bodies up to this size are held in memory and written upstream in one go.
# Twisted's own threshold is 100 KB, above which it wrote the body to a temporary file
# that the proxy then read back in pieces over several reactor turns; a long Codex
# conversation is several hundred KB. Larger bodies (up to maxBodyBytes) still go to a
# file, and a body of unknown length (chunked) moves to one when it grows past this.
MEMORY_BODY_MAX = 8 * 1024 * 1024


@attrs.frozen
class Limits:
    """
    Sizes and deadlines. The defaults are the documented behaviour; tests shorten them
    through the C{CODEX_PROXY_TUNING} environment variable (C{name=value,...}).

    @ivar maxBodyBytes: request bodies above this are refused with 413.
    @ivar headerTimeout: seconds a client may take to send its request line and headers.
    @ivar bodyIdleTimeout: seconds a client may stay silent while sending its body.
    @ivar bodyMinRate: bytes per second a body must average once C{bodyRateGrace} has
        passed, so a trickle cannot hold a connection for hours.
    @ivar bodyRateGrace: seconds before the body rate is checked.
    @ivar idleTimeout: seconds a keep-alive client connection may wait for its next request.
    @ivar connectTimeout: seconds to connect to the upstream (then 504).
    @ivar responseTimeout: seconds to wait for the upstream's response headers (then 504).
    @ivar keepAliveInterval: bridge: seconds of upstream silence between keep-alive events.
    @ivar streamIdleTimeout: bridge: seconds in which the upstream sent no bytes at all
        (comments such as llama.cpp's C{: ping} count) before the stream is failed.
    @ivar streamDataTimeout: bridge: seconds in which the upstream sent no data event (only
        comments) before the stream is failed.
    @ivar tailWait: bridge: seconds to wait for usage or C{[DONE]} after C{finish_reason}.
    @ivar storeMaxResponses: bridge: the most stored responses (C{docs/state.md}).
    @ivar storeMaxBytes: bridge: the most bytes of stored responses.
    @ivar storeTTL: bridge: seconds after its last use when a stored response expires.
    """

    maxBodyBytes: int = 64 * 1024 * 1024
    headerTimeout: float = 30.0
    bodyIdleTimeout: float = 60.0
    bodyMinRate: float = 256.0
    bodyRateGrace: float = 10.0
    idleTimeout: float = 30.0
    connectTimeout: float = 15.0
    responseTimeout: float = 300.0
    keepAliveInterval: float = 15.0
    streamIdleTimeout: float = 300.0
    streamDataTimeout: float = 1800.0
    tailWait: float = 5.0
    storeMaxResponses: int = 10_000
    storeMaxBytes: int = 256 * 1024 * 1024
    storeTTL: float = 30 * 24 * 3600.0

    @classmethod
    def fromTuning(cls, text: str | None) -> Limits:
        """
        Parse C{name=value,...} overrides (names as the attributes).

        @raise StartupError: an unknown name or a value that is not a positive number.
        """
        if not text:
            return cls()
        names = {a.name: a.type for a in attrs.fields(cls)}
        values: dict[str, float | int] = {}
        for item in text.split(","):
            name, sep, raw = item.strip().partition("=")
            if not sep or name not in names:
                raise StartupError(f"{TUNING_ENV}: unknown setting {name!r}")
            try:
                value = float(raw)
            except ValueError:
                raise StartupError(f"{TUNING_ENV}: {name} must be a number") from None
            if not value > 0:
                raise StartupError(f"{TUNING_ENV}: {name} must be positive")
            values[name] = int(value) if names[name] == "int" else value
        return cls(**values)


@attrs.frozen
class ProxyConfig:
    """
    What the service is built from (everything but the key).
    """

    port: int = 0
    serverInfo: str | None = None
    httpShutdown: bool = False
    upstreamURL: str = DEFAULT_UPSTREAM
    bridge: bool = False
    dumpDir: str | None = None
    stateFile: str | None = None
    limits: Limits = attrs.field(factory=Limits)
    warnings: tuple[str, ...] = ()
    profile: Profile = DEFAULT_PROFILE


def parsePort(value: str | None) -> int:
    """
    C{--port}: a number from 0 (ephemeral) to 65535.
    """
    if value is None:
        return 0
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) > 65535:
        raise StartupError(f"invalid --port {value!r}: expected a number from 0 to 65535")
    return int(text)


def checkUpstreamURL(url: str) -> str:
    """
    C{--upstream-url}: an absolute http or https URL with a host; query kept.
    """
    if not url or any(c in url for c in " \t\r\n\0"):
        raise StartupError("invalid --upstream-url: empty or contains whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise StartupError(f"invalid --upstream-url: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise StartupError("invalid --upstream-url: the scheme must be http or https")
    if not parts.hostname:
        raise StartupError("invalid --upstream-url: no host")
    if parts.username is not None or parts.password is not None:
        raise StartupError(
            "invalid --upstream-url: credentials in the URL are not allowed "
            "(the command line is world-readable)"
        )
    if parts.fragment:
        raise StartupError("invalid --upstream-url: a fragment is not allowed")
    if port == 0:
        raise StartupError("invalid --upstream-url: port 0")
    if ":" in parts.hostname:
        # hyperlink (under treq) refuses IPv6 literals when it encodes the URL, so every
        # request would fail: say so now.
        raise StartupError(
            "invalid --upstream-url: an IPv6 address literal is not supported; use a host "
            "name that resolves to it (e.g. localhost)"
        )
    try:
        url.encode("ascii")
    except UnicodeEncodeError:
        raise StartupError("invalid --upstream-url: use an ASCII (punycode) URL") from None
    return url


def loadProviderConfig(path: str, upstreamURL: str) -> Profile:
    """
    C{--provider-config}: read and validate the file, and resolve the effective provider
    profile (the file's settings over the host's profile).

    @raise StartupError: the file cannot be read, or is not a valid provider config.
    """
    if not path.strip():
        raise StartupError("invalid --provider-config: empty path")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise StartupError(f"cannot read --provider-config {path}: {e.strerror or e}") from None
    try:
        settings = parseProviderConfig(data)
    except ProviderConfigError as e:
        raise StartupError(f"invalid --provider-config {path}: {e}") from None
    return resolveProfile(upstreamURL, settings, f"--provider-config {path}")


def buildConfig(
    port: str | None,
    serverInfo: str | None,
    httpShutdown: bool,
    upstreamURL: str | None,
    bridge: bool,
    dumpDir: str | None,
    tuning: str | None = None,
    providerConfig: str | None = None,
    stateFile: str | None = None,
) -> ProxyConfig:
    """
    Validate the command line into a L{ProxyConfig}.

    @raise StartupError: anything unusable, as one line.
    """
    warnings: list[str] = []
    if bridge and upstreamURL is None:
        raise StartupError(
            "--bridge-to-chat needs --upstream-url (the default URL is a Responses "
            "endpoint, not Chat Completions)"
        )
    url = checkUpstreamURL(upstreamURL if upstreamURL is not None else DEFAULT_UPSTREAM)
    if bridge and not urlsplit(url).path.rstrip("/").endswith("/chat/completions"):
        warnings.append(
            f"--upstream-url path {urlsplit(url).path!r} does not end in /chat/completions"
        )
    if serverInfo is not None and not serverInfo.strip():
        raise StartupError("invalid --server-info: empty path")
    if dumpDir is not None and not dumpDir.strip():
        raise StartupError("invalid --dump-dir: empty path")
    profile = DEFAULT_PROFILE
    if providerConfig is not None:
        if not bridge:
            raise StartupError(
                "--provider-config needs --bridge-to-chat (it shapes the chat request)"
            )
        profile = loadProviderConfig(providerConfig, url)
    elif bridge:
        profile = resolveProfile(url, None)
    if stateFile is not None:
        if not stateFile.strip():
            raise StartupError("invalid --state-file: empty path")
        if not bridge:
            raise StartupError(
                "--state-file needs --bridge-to-chat (in pass-through mode the upstream "
                "stores responses)"
            )
    return ProxyConfig(
        port=parsePort(port),
        serverInfo=os.path.abspath(serverInfo) if serverInfo else None,
        httpShutdown=httpShutdown,
        upstreamURL=url,
        bridge=bridge,
        dumpDir=os.path.abspath(dumpDir) if dumpDir else None,
        stateFile=os.path.abspath(stateFile) if stateFile else None,
        limits=Limits.fromTuning(tuning),
        warnings=tuple(warnings),
        profile=profile,
    )
