"""
Tests for L{tests.support.procs}: test processes never outlive the test process, and
L{ProcessFixture}'s life cycle.
"""

from __future__ import annotations

import signal

from twisted.trial.unittest import SynchronousTestCase

from tests.support.procs import (
    PYTHON,
    ManagedProcess,
    ProcessFixture,
    makeTempDir,
    pidAlive,
    pythonEnv,
    waitPidGone,
)

# A stand-in test process: starts a child through ManagedProcess, prints its pid, waits.
_PARENT = """
import sys, time
from tests.support.procs import PYTHON, ManagedProcess
child = ManagedProcess([PYTHON, "-c", "import time; time.sleep(60)"], name="child").start()
print(child.pid, flush=True)
time.sleep(60)
"""


class DieWithParentTests(SynchronousTestCase):
    """
    Every L{ManagedProcess} child ends when the process that started it ends.
    """

    def test_childEndsWhenParentIsKilled(self) -> None:
        """SIGKILL of the test process (no cleanup can run) still ends its children."""
        parent = ManagedProcess(
            [PYTHON, "-c", _PARENT], env=pythonEnv(), directory=makeTempDir(self), name="parent"
        )
        self.addCleanup(parent.stop)
        parent.start()
        line = parent.waitFor(lambda: parent.stdout().strip() or None, 15, "the child's pid")
        childPid = int(line)
        self.assertTrue(pidAlive(childPid))
        parent.sendSignal(signal.SIGKILL)
        parent.wait(10)
        waitPidGone(childPid, 10, "the child of a killed test process")


class _Fake:
    def __init__(self, owner: ProcessFixture[_Fake]) -> None:
        self.alive = True
        owner.addCleanup(self.stop)

    def stop(self) -> None:
        self.alive = False


class ProcessFixtureTests(SynchronousTestCase):
    """
    L{ProcessFixture} starts once, restarts what is gone, and stops everything.
    """

    def test_lifeCycle(self) -> None:
        """Reused while running; replaced (the old one stopped) when not; stop() stops."""
        started: list[_Fake] = []

        def start(owner: ProcessFixture[_Fake]) -> _Fake:
            started.append(_Fake(owner))
            return started[-1]

        fixture = ProcessFixture(start, lambda fake: fake.alive)
        first = fixture.acquire()
        self.assertIs(fixture.acquire(), first)
        first.alive = False
        second = fixture.acquire()
        self.assertIsNot(second, first)
        self.assertEqual(len(started), 2)
        fixture.stop()
        self.assertFalse(second.alive)
        self.assertIsNot(fixture.acquire(), second)
        fixture.stop()

    def test_failedStartIsCleanedUp(self) -> None:
        """What a failing start had started is stopped, and the error is raised."""
        made: list[_Fake] = []

        def start(owner: ProcessFixture[_Fake]) -> _Fake:
            made.append(_Fake(owner))
            raise RuntimeError("the second process did not start")

        fixture = ProcessFixture(start, lambda fake: True)
        self.assertRaises(RuntimeError, fixture.acquire)
        self.assertFalse(made[0].alive)

    def test_everyCleanupRuns(self) -> None:
        """A failing cleanup does not keep the others from running."""
        fixture: ProcessFixture[None] = ProcessFixture(lambda owner: None, lambda _: True)
        ran: list[str] = []
        fixture.addCleanup(ran.append, "first")
        fixture.addCleanup(lambda: 1 / 0)
        fixture.addCleanup(ran.append, "last")
        self.assertRaises(ZeroDivisionError, fixture.stop)
        self.assertEqual(ran, ["last", "first"])
