# -*- test-case-name: tests.test_codex_direct -*-
"""
The real Codex CLI (C{codex exec}), run hermetically against a local server.

Each run gets a fresh C{HOME} and C{CODEX_HOME}, a minimal environment (no API keys
or Codex variables inherited), empty standard input, a custom provider pointing at
C{http://127.0.0.1:PORT/v1} with C{wire_api = "responses"}, and a deadline after which
the whole process group is killed.

What Codex 0.169.0 needed here, found by running it under C{strace} (see C{HERMETIC}):

  - C{analytics.enabled=false}: otherwise it resolves C{ab.chatgpt.com} and
    C{chatgpt.com} (analytics) at start-up;
  - C{features.plugins=false}: otherwise it syncs the plugin marketplace, resolving
    C{github.com}, C{api.github.com} and C{chatgpt.com};
  - standard input must not be a terminal or left open: C{codex exec} reads it
    ("Reading additional input from stdin...") until EOF, so it is given an empty pipe;
  - nothing else: no update check runs under C{exec}, C{-s workspace-write} works with the
    bundled bubblewrap (a warning says C{bwrap} is not on C{PATH}), and the warning that it
    will not create helper binaries under C{/tmp} is harmless.

Codex's defaults are otherwise kept: in particular the C{web_search} tool is still sent,
because the bridge must handle it. Per provider, C{request_max_retries=0} and
C{stream_max_retries=0} by default so failure cases end after one request.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.procs import REPO, ManagedProcess, WaitTimeout, makeTempDir

CODEX_VERSION = "0.171.0"
INSTALL_HINT = (
    f"npm install --prefix .cache/codex @openai/codex@{CODEX_VERSION}  "
    "(run in the repository root; or set CODEX_BIN to a codex binary)"
)

HERMETIC: dict[str, Any] = {
    "analytics.enabled": False,
    "features.plugins": False,
}
"""The C{-c} settings every run gets (see the module docstring)."""

DEFAULT_PROVIDER_OPTIONS: dict[str, Any] = {
    "request_max_retries": 0,
    "stream_max_retries": 0,
}

RESERVED_PROVIDER_IDS = frozenset({"openai", "ollama", "lmstudio", "amazon-bedrock"})


class CodexMissing(AssertionError):
    """
    The Codex CLI is not installed: the test fails (it is not skipped) and says how to
    install it.
    """


class CodexTimeout(AssertionError):
    """
    A Codex run did not finish in time (it was killed).
    """


def findCodex() -> Path:
    """
    Locate the Codex CLI: C{$CODEX_BIN}, else C{<repo>/.cache/codex/node_modules/.bin/codex}.

    @raise CodexMissing: if it is not there.
    """
    env = os.environ.get("CODEX_BIN")
    path = Path(env) if env else REPO / ".cache" / "codex" / "node_modules" / ".bin" / "codex"
    if not (path.exists() and os.access(path, os.X_OK)):
        raise CodexMissing(
            f"the Codex CLI {CODEX_VERSION} is needed for this test but {path} is missing"
            f"{' (from CODEX_BIN)' if env else ''}; install it with: {INSTALL_HINT}"
        )
    return path


def codexVersion(timeout: float = 30.0) -> str:
    """
    @return: what C{codex --version} prints, e.g. C{"codex-cli 0.171.0"}.
    """
    out = subprocess.run(
        [str(findCodex()), "--version"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tempfile.gettempdir()},
    )
    return out.stdout.decode().strip()


def tomlValue(value: Any) -> str:
    """
    Format a value as TOML for C{-c key=value}: strings, numbers, booleans, lists and
    (inline) tables.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(tomlValue(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {tomlValue(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


@dataclass
class CodexResult:
    """
    What one C{codex exec} run did.

    @ivar exitCode: its exit status (0 success, 1 failed turn).
    @ivar stdout: standard output (the final message, or JSONL events with C{--json}).
    @ivar stderr: standard error (banner, warnings, errors).
    @ivar events: the JSONL events (C{--json} runs), else L{None}.
    @ivar workdir: the folder it ran in.
    @ivar home: its C{HOME}.
    @ivar codexHome: its C{CODEX_HOME}.
    @ivar duration: wall time in seconds.
    @ivar argv: the command line.
    """

    exitCode: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]] | None
    workdir: Path
    home: Path
    codexHome: Path
    duration: float
    argv: list[str] = field(default_factory=list)

    def items(self, itemType: str | None = None) -> list[dict[str, Any]]:
        """
        @param itemType: only items of this type (e.g. C{"agent_message"},
            C{"command_execution"}, C{"error"}).
        @return: the items of C{item.completed} events, in order.
        """
        out = []
        for e in self.events or []:
            if e.get("type") == "item.completed":
                item = e.get("item", {})
                if itemType is None or item.get("type") == itemType:
                    out.append(item)
        return out

    def agentMessages(self) -> list[str]:
        """
        @return: the texts of the agent messages (C{--json} runs).
        """
        return [i.get("text", "") for i in self.items("agent_message")]

    def describe(self) -> str:
        """
        @return: exit status and outputs, for assertion messages.
        """
        return (
            f"codex exited {self.exitCode} after {self.duration:.1f} s\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


class CodexCLI:
    """
    Runs C{codex exec} against one Responses endpoint.

        codex = CodexCLI(self, port=fake.port)
        result = codex.run("say hello")
        self.assertEqual(result.exitCode, 0, result.describe())
    """

    def __init__(
        self,
        testCase: Any,
        port: int | None = None,
        baseURL: str | None = None,
        providerId: str = "testprovider",
        model: str = "test-model",
        envKey: tuple[str, str] | None = None,
        providerOptions: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        timeout: float = 120.0,
        sandbox: str = "workspace-write",
    ) -> None:
        """
        @param testCase: its cleanup kills runs left behind and removes temp folders.
        @param port: the port on 127.0.0.1 serving C{/v1/responses} (or give C{baseURL}).
        @param baseURL: the provider's C{base_url} (Codex appends C{/responses}).
        @param providerId: the provider id (not one of Codex's reserved ids).
        @param model: the model slug (an unknown one only makes Codex warn).
        @param envKey: C{(NAME, value)}: the provider reads its key from env var NAME, and
            the run gets it, so Codex sends C{Authorization: Bearer value}. Without it
            Codex sends no Authorization header.
        @param providerOptions: provider fields added to or overriding
            L{DEFAULT_PROVIDER_OPTIONS} (e.g. C{stream_idle_timeout_ms}); a value of
            L{None} removes a default.
        @param config: extra C{-c key=value} settings for every run (values as Python).
        @param timeout: default seconds before a run is killed.
        @param sandbox: C{-s}: C{read-only}, C{workspace-write} or C{danger-full-access}.
        """
        if providerId in RESERVED_PROVIDER_IDS:
            raise ValueError(f"provider id {providerId!r} is reserved by Codex")
        if baseURL is None:
            if port is None:
                raise ValueError("give port or baseURL")
            baseURL = f"http://127.0.0.1:{port}/v1"
        self.testCase = testCase
        self.baseURL = baseURL
        self.providerId = providerId
        self.model = model
        self.envKey = envKey
        self.providerOptions = dict(DEFAULT_PROVIDER_OPTIONS)
        for k, v in (providerOptions or {}).items():
            if v is None:
                self.providerOptions.pop(k, None)
            else:
                self.providerOptions[k] = v
        self.config = dict(config or {})
        self.timeout = timeout
        self.sandbox = sandbox
        self.binary = findCodex()

    def provider(self) -> dict[str, Any]:
        """
        @return: the provider table given with C{-c model_providers.<id>=...}.
        """
        table: dict[str, Any] = {
            "name": self.providerId,
            "base_url": self.baseURL,
            "wire_api": "responses",
        }
        if self.envKey is not None:
            table["env_key"] = self.envKey[0]
        table.update(self.providerOptions)
        return table

    def argv(
        self,
        prompt: str,
        jsonEvents: bool = True,
        config: Mapping[str, Any] | None = None,
        extraArgs: Sequence[str] = (),
    ) -> list[str]:
        """
        @return: the command line for one run.
        """
        settings: dict[str, Any] = dict(HERMETIC)
        settings[f"model_providers.{self.providerId}"] = self.provider()
        settings["model_provider"] = self.providerId
        settings["model"] = self.model
        settings.update(self.config)
        settings.update(config or {})
        argv = [str(self.binary), "exec", "--skip-git-repo-check", "-s", self.sandbox]
        for key, value in settings.items():
            argv += ["-c", f"{key}={tomlValue(value)}"]
        if jsonEvents:
            argv.append("--json")
        argv += list(extraArgs)
        argv += ["--", prompt]
        return argv

    def run(
        self,
        prompt: str,
        jsonEvents: bool = True,
        config: Mapping[str, Any] | None = None,
        extraArgs: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        timeout: float | None = None,
    ) -> CodexResult:
        """
        Run C{codex exec} once, with a fresh C{HOME} and C{CODEX_HOME}.

        @param prompt: the user prompt.
        @param jsonEvents: pass C{--json} and parse the JSONL events.
        @param config: extra C{-c} settings for this run.
        @param extraArgs: more arguments (e.g. C{["-i", image]}, C{["--output-schema", f]}).
        @param env: extra environment variables.
        @param workdir: the folder to run in (default: a new empty one).
        @param timeout: seconds before the run is killed (default: the instance's).
        @raise CodexTimeout: if it does not finish in time.
        """
        base = makeTempDir(self.testCase, prefix="codex-")
        home, codexHome = base / "home", base / "codex-home"
        home.mkdir()
        codexHome.mkdir()
        if workdir is None:
            workdir = base / "work"
            workdir.mkdir()
        runEnv = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(home),
            "CODEX_HOME": str(codexHome),
            "TMPDIR": str(base),
            "LANG": "C.UTF-8",
        }
        if self.envKey is not None:
            runEnv[self.envKey[0]] = self.envKey[1]
        runEnv.update(env or {})
        argv = self.argv(prompt, jsonEvents, config, extraArgs)
        proc = ManagedProcess(
            argv, env=runEnv, stdin=b"", cwd=workdir, directory=base, name="codex"
        )
        limit = self.timeout if timeout is None else timeout
        self.testCase.addCleanup(proc.stop, 2.0)
        started = time.monotonic()
        proc.start()
        try:
            code = proc.wait(limit)
        except WaitTimeout:
            proc.stop(2.0)
            raise CodexTimeout(
                f"codex exec did not finish within {limit} s and was killed\n--- stdout ---\n"
                f"{proc.stdout().decode('utf-8', 'replace')[-4000:]}\n--- stderr ---\n"
                f"{proc.stderr().decode('utf-8', 'replace')[-4000:]}"
            ) from None
        finally:
            # Whatever Codex spawned (shells, sandbox helpers) dies with its group.
            proc.killGroup()
        duration = time.monotonic() - started
        stdout = proc.stdout().decode("utf-8", "replace")
        events = None
        if jsonEvents:
            events = []
            for line in stdout.splitlines():
                line = line.strip()
                if line.startswith("{"):
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        pass
        return CodexResult(
            exitCode=code,
            stdout=stdout,
            stderr=proc.stderr().decode("utf-8", "replace"),
            events=events,
            workdir=workdir,
            home=home,
            codexHome=codexHome,
            duration=duration,
            argv=argv,
        )

