# -*- test-case-name: tests.test_procs -*-
"""
Real processes for integration tests: start, wait for readiness, stop, read outputs.

Outputs go to files in a temporary directory, so a chatty process never blocks on a full
pipe and a test can read them at any time. Waiting is always bounded; the polling loops
wait on the process itself between checks, so an early exit is noticed at once and
reported with its return code and standard error.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

REPO = Path(__file__).resolve().parents[2]
"""The repository root (the parent of C{tests/})."""

PYTHON = sys.executable
"""The interpreter running the tests (the project's venv)."""

_POLL = 0.01
_T = TypeVar("_T")


class ProcessFailed(AssertionError):
    """
    A process exited (or did not get ready) when a test needed it running.

    An L{AssertionError}, so trial and pytest report it as a test failure.
    """


class WaitTimeout(AssertionError):
    """
    Something a test waited for did not happen within its deadline.
    """


_PR_SET_PDEATHSIG = 1


def _dieWithParent(parent: int) -> Callable[[], None] | None:
    """
    A C{preexec_fn} that has the kernel send the child SIGTERM when the test process
    ends, however it ends (a failed test, an interrupted or killed runner): no test
    process outlives the run. Linux only; elsewhere nothing.

    @param parent: the test process's pid (the child checks it did not already miss it).
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def makeTempDir(testCase: Any = None, prefix: str = "crap-test-") -> Path:
    """
    Make a temporary directory removed when the test ends (unless C{KEEP_TEST_TMP=1}).

    C{SynchronousTestCase.mktemp} is relative to the working directory, which under
    pytest is the repository itself; this stays under the system temporary directory.

    @param testCase: the test case whose cleanup removes the directory, or L{None}.
    @param prefix: the directory name's prefix.
    @return: the new directory.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if testCase is not None and os.environ.get("KEEP_TEST_TMP") != "1":
        testCase.addCleanup(shutil.rmtree, path, True)
    return path


def pythonEnv(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """
    The environment for a Python child: ours, with the repository on C{PYTHONPATH} and
    unbuffered output.

    @param extra: variables to add or override.
    @return: a new environment.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


class ManagedProcess:
    """
    One child process with its standard output and error captured to files.

    @ivar argv: the command.
    @ivar dir: the directory holding C{stdout}, C{stderr} (and anything else the test puts).
    @ivar popen: the L{subprocess.Popen}, once started.
    @ivar info: the decoded info file, once L{startProcess} has waited for it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = b"",
        cwd: str | os.PathLike[str] | None = None,
        directory: Path | None = None,
        keepStdinOpen: bool = False,
        newSession: bool = True,
        name: str | None = None,
    ) -> None:
        """
        @param argv: the command and its arguments.
        @param env: the complete environment (default: ours).
        @param stdin: bytes written to its standard input, which is then closed (unless
            C{keepStdinOpen}); L{None} for C{/dev/null}.
        @param cwd: its working directory (default: the repository root).
        @param directory: where to put its outputs (default: a new temporary directory).
        @param keepStdinOpen: leave the stdin pipe open after writing (the child sees no
            EOF until L{closeStdin} or L{stop}).
        @param newSession: start it in a new session, so L{stop} can signal the whole
            process group (children included).
        @param name: a short name for messages (default: the program's basename).
        """
        self.argv = [str(a) for a in argv]
        self.env = dict(os.environ if env is None else env)
        self.stdinBytes = stdin
        self.cwd = str(REPO if cwd is None else cwd)
        self.dir = directory if directory is not None else Path(tempfile.mkdtemp(prefix="proc-"))
        self.keepStdinOpen = keepStdinOpen
        self.newSession = newSession
        self.name = name or os.path.basename(self.argv[0])
        self.popen: subprocess.Popen[bytes] | None = None
        self.stdoutPath = self.dir / f"{self.name}.stdout"
        self.stderrPath = self.dir / f"{self.name}.stderr"
        self._stdinFile: Any = None
        self.info: Any = None

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        """
        Start the process.

        @return: C{self}.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        stdinArg: Any
        if self.stdinBytes is None:
            stdinArg = subprocess.DEVNULL
        elif len(self.stdinBytes) > 60000 and not self.keepStdinOpen:
            # A pipe holds 64 KiB: larger input goes through a file so nothing blocks.
            stdinPath = self.dir / f"{self.name}.stdin"
            stdinPath.write_bytes(self.stdinBytes)
            stdinArg = self._stdinFile = open(stdinPath, "rb")  # noqa: SIM115
        else:
            stdinArg = subprocess.PIPE
        with open(self.stdoutPath, "wb") as out, open(self.stderrPath, "wb") as err:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=stdinArg,
                stdout=out,
                stderr=err,
                start_new_session=self.newSession,
                close_fds=True,
                preexec_fn=_dieWithParent(os.getpid()),
            )
        if stdinArg is subprocess.PIPE:
            assert self.popen.stdin is not None
            try:
                self.popen.stdin.write(self.stdinBytes or b"")
                self.popen.stdin.flush()
            except BrokenPipeError:
                pass
            if not self.keepStdinOpen:
                self.closeStdin()
        return self

    def closeStdin(self) -> None:
        """
        Close our end of its standard input (it sees EOF).
        """
        if self.popen is not None and self.popen.stdin is not None:
            try:
                self.popen.stdin.close()
            except BrokenPipeError:
                pass
        if self._stdinFile is not None:
            self._stdinFile.close()
            self._stdinFile = None

    @property
    def pid(self) -> int:
        """
        The process id.
        """
        assert self.popen is not None, "not started"
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        """
        The exit status, or L{None} while it runs (negative: killed by that signal).
        """
        if self.popen is None:
            return None
        return self.popen.poll()

    def running(self) -> bool:
        """
        @return: whether it has been started and has not exited.
        """
        return self.popen is not None and self.popen.poll() is None

    def sendSignal(self, sig: int) -> None:
        """
        Send C{sig} to the process (not its group).
        """
        if self.running():
            os.kill(self.pid, sig)

    def _signalGroup(self, sig: int) -> None:
        if not self.running() and not self.newSession:
            return
        try:
            if self.newSession:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def killGroup(self) -> None:
        """
        SIGKILL whatever is left in its process group (its children), once it has
        exited or to end it at once. Only for processes started with C{newSession}.
        """
        if self.popen is not None and self.newSession:
            self._signalGroup(signal.SIGKILL)
            if self.popen.poll() is None:
                self.popen.wait(5)

    def wait(self, timeout: float) -> int:
        """
        Wait for it to exit.

        @param timeout: seconds.
        @return: its exit status.
        @raise WaitTimeout: if it is still running after C{timeout}.
        """
        assert self.popen is not None, "not started"
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"{self.name} (pid {self.pid}) still running after {timeout} s"
                f"{self._stderrTail()}"
            ) from None

    def stop(self, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
        """
        Stop it: C{sig} (SIGTERM), then SIGKILL if it is still there after C{timeout}.
        With C{newSession}, the whole process group is signalled, and killed at the end
        in any case, so no grandchild survives. Idempotent.

        @return: its exit status (L{None} if it was never started).
        """
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signalGroup(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signalGroup(signal.SIGKILL)
                self.popen.wait(timeout=timeout)
            if self.newSession:
                self._signalGroup(signal.SIGKILL)  # leftovers in its group, if any
        self.closeStdin()
        return self.popen.returncode

    # -- outputs ------------------------------------------------------------------------

    def stdout(self) -> bytes:
        """
        @return: everything it has written to standard output so far.
        """
        return self.stdoutPath.read_bytes() if self.stdoutPath.exists() else b""

    def stderr(self) -> bytes:
        """
        @return: everything it has written to standard error so far.
        """
        return self.stderrPath.read_bytes() if self.stderrPath.exists() else b""

    def _stderrTail(self, limit: int = 4000) -> str:
        err = self.stderr()
        if not err:
            return ""
        text = err[-limit:].decode("utf-8", "replace")
        return f"\n--- {self.name} stderr (last {limit} bytes) ---\n{text}"

    def describeExit(self) -> str:
        """
        @return: a message with its exit status and the end of its standard error.
        """
        return f"{self.name} (pid {self.pid}) exited with status {self.returncode}" + (
            self._stderrTail()
        )

    # -- waiting ------------------------------------------------------------------------

    def waitFor(
        self,
        check: Callable[[], _T | None],
        timeout: float,
        what: str,
        allowExit: bool = False,
    ) -> _T:
        """
        Wait until C{check()} returns something other than L{None}.

        Between checks this waits on the process itself (C{Popen.wait} with a short
        timeout), so an exit is noticed at once.

        @param check: returns the awaited value, or L{None} for "not yet".
        @param timeout: the deadline in seconds.
        @param what: what is awaited, for the error message.
        @param allowExit: keep checking after the process exits (once more, then fail).
        @return: what C{check} returned.
        @raise ProcessFailed: if it exits first.
        @raise WaitTimeout: at the deadline.
        """
        assert self.popen is not None, "not started"
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value is not None:
                return value
            if self.popen.poll() is not None:
                value = check()
                if value is not None and allowExit:
                    return value
                raise ProcessFailed(f"waiting for {what}: " + self.describeExit())
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(
                    f"{what} did not happen within {timeout} s ({self.name}, pid "
                    f"{self.pid}){self._stderrTail()}"
                )
            try:
                self.popen.wait(timeout=min(_POLL, remaining))
            except subprocess.TimeoutExpired:
                pass

    def waitForJSONFile(self, path: str | os.PathLike[str], timeout: float = 15.0) -> Any:
        """
        Wait for an info file (one JSON document, written atomically) to appear.

        @param path: the file.
        @param timeout: seconds.
        @return: the decoded JSON.
        """
        p = Path(path)

        def check() -> Any:
            try:
                text = p.read_text()
            except FileNotFoundError:
                return None
            if not text.endswith("\n"):
                return None
            return json.loads(text)

        return self.waitFor(check, timeout, f"info file {p}")

    def waitForOutput(
        self, needle: bytes | str, stream: str = "stderr", timeout: float = 15.0
    ) -> bytes:
        """
        Wait until its standard output or error contains C{needle}.

        @param needle: what to look for.
        @param stream: C{"stdout"} or C{"stderr"}.
        @param timeout: seconds.
        @return: the whole stream read so far.
        """
        if isinstance(needle, str):
            needle = needle.encode("utf-8")
        read = self.stdout if stream == "stdout" else self.stderr

        def check() -> bytes | None:
            data = read()
            return data if needle in data else None

        return self.waitFor(check, timeout, f"{needle!r} on {stream}", allowExit=True)

    def waitExit(self, timeout: float) -> int:
        """
        Like L{wait}, named for symmetry with the other waits.
        """
        return self.wait(timeout)


def pidAlive(pid: int) -> bool:
    """
    @return: whether a process with this id exists (and is not a zombie).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def waitPidGone(pid: int, timeout: float = 10.0, what: str = "process") -> None:
    """
    Wait until process C{pid} (one we did not start directly, e.g. a daemonized twistd
    whose pid is in its server-info file) has gone, polling C{/proc} in a bounded loop.

    @raise WaitTimeout: if it is still there after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while pidAlive(pid):
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what} (pid {pid}) still running after {timeout} s")
        time.sleep(_POLL)  # polling a pid we cannot wait() on: bounded by the deadline


def startProcess(
    testCase: Any,
    argv: Sequence[str],
    infoFile: str | os.PathLike[str] | None = None,
    infoTimeout: float = 15.0,
    stopTimeout: float = 5.0,
    **kwargs: Any,
) -> ManagedProcess:
    """
    Start a process that the test's cleanup stops (SIGTERM, then SIGKILL), even when the
    test fails; optionally wait for its info file.

    @param testCase: the L{SynchronousTestCase}.
    @param argv: the command.
    @param infoFile: a JSON file the process writes when ready; waited for if given.
    @param infoTimeout: seconds to wait for C{infoFile}.
    @param stopTimeout: seconds between SIGTERM and SIGKILL at cleanup.
    @param kwargs: passed to L{ManagedProcess}.
    @return: the running process (C{.info} holds the decoded info file, if any).
    """
    if "directory" not in kwargs:
        kwargs["directory"] = makeTempDir(testCase, prefix="proc-")
    proc = ManagedProcess(argv, **kwargs)
    testCase.addCleanup(proc.stop, stopTimeout)
    proc.start()
    if infoFile is not None:
        proc.info = proc.waitForJSONFile(infoFile, infoTimeout)
    return proc


_Started = TypeVar("_Started")


class ProcessFixture(Generic[_Started]):
    """
    Processes shared by the tests of a module, for suites whose processes take longer to
    start than their tests take to run: started by the first test that asks, restarted if
    a test finds them gone, stopped by L{stop}.

    Trial has no class or module fixtures (it calls neither C{setUpClass} nor
    C{tearDownModule}, and C{trial -j} hands one class's tests to several workers), so a
    module calls L{stop} from C{tearDownModule}, which pytest and unittest run; under
    trial the processes last as long as the worker, and no longer: every test process
    child is started to receive SIGTERM when the test process ends (L{ManagedProcess}).

    The fixture stands in for a test case as the owner of what it starts
    (C{addCleanup}), so L{tests.support.fake.FakeUpstream} and
    L{tests.support.proxy.ProxyProcess} take it as their C{testCase}.
    """

    def __init__(
        self,
        start: Callable[[ProcessFixture[_Started]], _Started],
        running: Callable[[_Started], bool],
    ) -> None:
        """
        @param start: starts the processes, owned by the fixture it is given.
        @param running: whether what C{start} returned is still usable.
        """
        self._start = start
        self._running = running
        self._started: _Started | None = None
        self._cleanups: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def addCleanup(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """
        Run C{f} when the fixture stops (last added, first run).
        """
        self._cleanups.append((f, args, kwargs))

    def assertEqual(self, first: object, second: object) -> None:
        """
        What the processes' helpers call on their owner.
        """
        if first != second:
            raise AssertionError(f"{first!r} != {second!r}")

    def acquire(self) -> _Started:
        """
        @return: the processes, started now if they are not running.
        """
        if self._started is not None and not self._running(self._started):
            self.stop()
        if self._started is None:
            try:
                self._started = self._start(self)
            except BaseException:
                self.stop()
                raise
        return self._started

    def stop(self) -> None:
        """
        Stop everything started (every cleanup runs, even if one fails).
        """
        self._started = None
        errors = []
        while self._cleanups:
            f, args, kwargs = self._cleanups.pop()
            try:
                f(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - the others must still run
                errors.append(e)
        if errors:
            raise errors[0]


class PreconditionFailed(Exception):
    """
    A test could not set up the situation it is about (a recording that no longer shows
    it, a machine too fast to show it). Deliberately not an L{AssertionError}: the test
    errors instead of passing without having tested anything.
    """


def precondition(condition: object, message: object) -> None:
    """
    @raise PreconditionFailed: with C{message} if C{condition} is false.
    """
    if not condition:
        raise PreconditionFailed(message)
