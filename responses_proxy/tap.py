# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin's options and service, shared with the console script.

C{postOptions} runs before twistd daemonizes and closes stdin, so that is where the
process is hardened and the key is read. Start-up errors print one line and exit
(a L{usage.UsageError} would make twistd print the whole usage text).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from twisted.python import usage

from responses_proxy import __version__, hardening
from responses_proxy.config import TUNING_ENV, ProxyConfig, StartupError, buildConfig
from responses_proxy.keyfile import AuthorizationHeader, KeyReadError, readAuthorization

if TYPE_CHECKING:
    from responses_proxy.web.service import ProxyService

PROG = "codex-responses-api-proxy"
SYNOPSIS = (
    "[--port PORT] [--server-info FILE] [--http-shutdown] [--upstream-url URL] "
    "[--bridge-to-chat] [--provider-config FILE] [--dump-dir DIR] [--state-file FILE]"
)


def exitWithError(error: StartupError) -> NoReturn:
    """
    Print one line and exit with the error's status.
    """
    print(f"Error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(error.exitCode)


def _printAndExit(text: str) -> NoReturn:
    """
    Print to stdout and exit 0, quietly when the reader has gone ("--help | head -1").
    """
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)


class Options(usage.Options):
    """
    The command line of both entry points.
    """

    synopsis = SYNOPSIS
    longdesc = (
        "Reads an API key from stdin and forwards exactly POST /v1/responses to the "
        "upstream with Authorization: Bearer <key>; everything else is 403."
    )
    optParameters = [
        ["port", None, None, "Port to bind on 127.0.0.1 (default: an ephemeral port)."],
        [
            "server-info",
            None,
            None,
            'Write {"port": <port>, "pid": <pid>} as one JSON line here once listening.',
        ],
        [
            "upstream-url",
            None,
            None,
            "URL to forward to (default https://api.openai.com/v1/responses).",
        ],
        ["dump-dir", None, None, "Write each request and response as JSON files here."],
        [
            "provider-config",
            None,
            None,
            "Bridge: a JSON file adapting the chat request to the upstream (see "
            "docs/providers.md).",
        ],
        [
            "state-file",
            None,
            None,
            "Bridge: keep stored responses in this SQLite file, so previous_response_id "
            "and item_reference survive a restart (default: in memory).",
        ],
    ]
    optFlags = [
        ["http-shutdown", None, "Enable GET /shutdown to stop the proxy (exit code 0)."],
        [
            "bridge-to-chat",
            None,
            "Convert to and from a Chat Completions upstream (needs --upstream-url).",
        ],
    ]

    def getSynopsis(self) -> str:
        """
        The usage line: it names the console script, or twistd and the plugin under twistd.
        """
        if self.parent is None:
            return f"Usage: {PROG} {SYNOPSIS}"
        return super().getSynopsis()

    def opt_version(self) -> NoReturn:
        """
        Print the proxy's version and exit.
        """
        _printAndExit(f"{PROG} {__version__}")

    def opt_help(self) -> NoReturn:
        """
        Display this help and exit.
        """
        _printAndExit(str(self))

    opt_h = opt_help

    def postOptions(self) -> None:
        try:
            self["config"] = buildConfig(
                port=self["port"],
                serverInfo=self["server-info"],
                httpShutdown=bool(self["http-shutdown"]),
                upstreamURL=self["upstream-url"],
                bridge=bool(self["bridge-to-chat"]),
                dumpDir=self["dump-dir"],
                tuning=os.environ.get(TUNING_ENV),
                providerConfig=self["provider-config"],
                stateFile=self["state-file"],
            )
            try:
                hardening.hardenProcess()
            except hardening.HardeningError as e:
                raise StartupError(str(e).removeprefix("ERROR: "), e.exitCode) from None
            try:
                self["authorization"] = readKeyFromStdin()
            except KeyReadError as e:
                raise StartupError(str(e)) from None
        except StartupError as e:
            exitWithError(e)


def readKeyFromStdin() -> AuthorizationHeader:
    """
    Read the key from fd 0; on a terminal, say so first and do not echo what is typed.
    """
    if not os.isatty(0):
        return readAuthorization()
    import termios

    try:
        saved = termios.tcgetattr(0)
    except termios.error:
        saved = None
    if saved is not None:
        # Echo off before the prompt: what is typed after it is never shown.
        quiet = list(saved)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(0, termios.TCSANOW, quiet)
    print(
        f"{PROG}: waiting for the API key on stdin (one line, not shown; "
        "pipe it in to avoid typing it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        return readAuthorization()
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSANOW, saved)
        print(file=sys.stderr, flush=True)


def makeService(options: Options, reactor: Any = None) -> ProxyService:
    """
    twistd's entry point (and the console script's): the reactor is installed by now, so
    it is imported here unless one is given.
    """
    if reactor is None:
        from twisted.internet import reactor
    from responses_proxy.build import buildService

    config: ProxyConfig = options["config"]
    try:
        service = buildService(reactor, config, options["authorization"])
    except StartupError as e:
        exitWithError(e)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    if config.bridge:
        print(f"bridge: provider profile {config.profile.describe()}", file=sys.stderr, flush=True)
    return service
