"""
Tests for L{responses_proxy.web.timers}: deadlines measured on a monotonic clock while the
reactor's (wall) clock may step.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.support.clocks import SteppingClocks


class DeadlineTests(SynchronousTestCase):
    """
    L{Deadline}: start, touch, cancel, and clock steps.
    """

    def setUp(self) -> None:
        self.clocks = SteppingClocks()
        self.fired: list[float] = []
        self.deadline = self.clocks.clock.deadline(20, lambda: self.fired.append(self.clocks.now))

    def test_firesAfterItsLength(self) -> None:
        """Started, it fires once, after exactly its length."""
        self.deadline.start()
        self.clocks.elapse(19.9)
        self.assertEqual(self.fired, [])
        self.clocks.elapse(0.1)
        self.assertEqual(self.fired, [20.0])
        self.assertFalse(self.deadline.running)
        self.clocks.elapse(100)
        self.assertEqual(self.fired, [20.0])

    def test_forwardWallStepDoesNotFireEarly(self) -> None:
        """A wall clock jumping 18 s forward does not end a 20 s limit after 8 s."""
        self.deadline.start()
        self.clocks.elapse(8)
        self.clocks.stepWall(18)
        self.assertEqual(self.fired, [])
        self.assertAlmostEqual(self.deadline.remaining(), 12.0)
        self.clocks.elapse(11.9)
        self.assertEqual(self.fired, [])
        self.clocks.elapse(0.1)
        self.assertEqual(self.fired, [20.0])

    def test_lateWakeFiresAtOnce(self) -> None:
        """Woken late (the wall clock stepped back), it fires at once: the limit is measured
        on the monotonic clock, not on when the reactor woke it."""
        self.deadline.start()
        self.clocks.now += 25  # real time passed but the reactor has not woken yet
        self.clocks.reactor.advance(20)
        self.assertEqual(self.fired, [25.0])

    def test_touchPushesTheEndBack(self) -> None:
        """Activity moves the end to a full period from now, without a new reactor call."""
        self.deadline.start()
        calls = len(self.clocks.reactor.getDelayedCalls())
        self.clocks.elapse(15)
        self.deadline.touch()
        self.assertEqual(len(self.clocks.reactor.getDelayedCalls()), calls)
        self.clocks.elapse(19)
        self.assertEqual(self.fired, [])
        self.clocks.elapse(1)
        self.assertEqual(self.fired, [35.0])

    def test_touchOfStoppedDeadlineDoesNothing(self) -> None:
        """Touching a deadline that is not running does not start it."""
        self.deadline.touch()
        self.clocks.elapse(100)
        self.assertEqual(self.fired, [])

    def test_cancel(self) -> None:
        """A cancelled deadline never fires and leaves no reactor call behind."""
        self.deadline.start()
        self.deadline.cancel()
        self.assertEqual(self.clocks.reactor.getDelayedCalls(), [])
        self.clocks.elapse(100)
        self.assertEqual(self.fired, [])
        self.assertIsNone(self.deadline.remaining())

    def test_stopKeepsTheWakeUpForTheNextStart(self) -> None:
        """A stopped deadline never fires; started again, it reuses the pending wake-up
        (no new reactor call) and still ends a full period after the new start."""
        self.deadline.start()
        [call] = self.clocks.reactor.getDelayedCalls()
        self.clocks.elapse(5)
        self.deadline.stop()
        self.assertFalse(self.deadline.running)
        self.assertIsNone(self.deadline.remaining())
        self.clocks.elapse(5)
        self.deadline.start()
        self.assertEqual(self.clocks.reactor.getDelayedCalls(), [call])
        self.clocks.elapse(19.9)
        self.assertEqual(self.fired, [])
        self.clocks.elapse(0.1)
        self.assertEqual(self.fired, [30.0])

    def test_stoppedNeverFires(self) -> None:
        """The wake-up of a stopped deadline comes and does nothing; C{cancel} after
        C{stop} drops it."""
        self.deadline.start()
        self.deadline.stop()
        self.clocks.elapse(100)
        self.assertEqual(self.fired, [])
        self.deadline.start()
        self.deadline.stop()
        self.deadline.cancel()
        self.assertEqual(self.clocks.reactor.getDelayedCalls(), [])

    def test_restartWithNewLength(self) -> None:
        """C{start(seconds)} restarts with another length."""
        self.deadline.start()
        self.clocks.elapse(5)
        self.deadline.start(3)
        self.clocks.elapse(3)
        self.assertEqual(self.fired, [8.0])

    def test_restartLongerDoesNotFireEarly(self) -> None:
        """Restarting to a later end keeps the earlier wake-up but sleeps again."""
        self.deadline.start(5)
        self.clocks.elapse(4)
        self.deadline.start(20)
        self.clocks.elapse(19.9)
        self.assertEqual(self.fired, [])
        self.clocks.elapse(0.1)
        self.assertEqual(self.fired, [24.0])

    def test_restartShorterMovesTheWakeUp(self) -> None:
        """Restarting to an earlier end than the pending wake-up fires on time."""
        self.deadline.start(20)
        self.deadline.start(2)
        self.clocks.elapse(2)
        self.assertEqual(self.fired, [2.0])


class _Owner:
    def __init__(self, clocks: SteppingClocks, fired: list[str]) -> None:
        self.fired = fired
        self.deadline = clocks.clock.deadline(5, self.expired)

    def expired(self) -> None:
        self.fired.append("owner")


class OwnershipTests(SynchronousTestCase):
    """
    A deadline does not keep its owner alive (no reference cycle per owner).
    """

    def test_ownerFreedByReferenceCounting(self) -> None:
        """An owner holding its deadline is freed as soon as nothing else holds it, even
        with the deadline running; the wake-up then does nothing."""
        import gc
        import weakref

        clocks = SteppingClocks()
        fired: list[str] = []
        gc.disable()
        self.addCleanup(gc.enable)
        owner = _Owner(clocks, fired)
        owner.deadline.start()
        ref = weakref.ref(owner)
        del owner
        self.assertIsNone(ref())
        clocks.elapse(10)
        self.assertEqual(fired, [])

    def test_liveOwnerFires(self) -> None:
        """While the owner lives, its method is called."""
        clocks = SteppingClocks()
        fired: list[str] = []
        owner = _Owner(clocks, fired)
        owner.deadline.start()
        clocks.elapse(5)
        self.assertEqual(fired, ["owner"])

    def test_plainFunctionsHeldStrongly(self) -> None:
        """A function or lambda (no owner to hold) is kept and called."""
        clocks = SteppingClocks()
        fired: list[str] = []
        deadline = clocks.clock.deadline(1, lambda: fired.append("lambda"))
        deadline.start()
        clocks.elapse(1)
        self.assertEqual(fired, ["lambda"])
