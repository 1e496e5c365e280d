# -*- test-case-name: tests.test_timers -*-
"""
Fake clocks for timer tests: a reactor whose (wall) clock may step, beside a monotonic one.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from responses_proxy.web.timers import Clock


class SteppingClocks:
    """
    A fake reactor (the wall clock, which may step) and a separate monotonic clock.

    @ivar clock: the L{Clock} to hand to the code under test.
    """

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.now = 0.0
        self.clock = Clock(self.reactor, lambda: self.now)

    def elapse(self, seconds: float) -> None:
        """
        Real time passes: both clocks move.
        """
        self.now += seconds
        self.reactor.advance(seconds)

    def stepWall(self, seconds: float) -> None:
        """
        The wall clock jumps (NTP, a VM resumed); no real time passes.
        """
        self.reactor.advance(seconds)
