# -*- test-case-name: tests.test_timers -*-
"""
Limits that end a request or a stream, measured on a monotonic clock.

Twisted schedules C{callLater} on the wall clock (C{reactor.seconds()} is C{time.time}), and a
virtual machine's wall clock was seen to jump 18 s forward: a 20 s limit then fired after 8 s
of real time. A L{Deadline} keeps its end on the monotonic clock and uses the reactor only to
be woken: woken early, it sleeps again for what is really left. Touching a running deadline
(activity that pushes the end back) only moves the end; the reactor call is not rescheduled
until it comes due, so a stream's per-event touch costs one clock read.
"""

from __future__ import annotations

import inspect
import time
import weakref
from collections.abc import Callable

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime


@attrs.frozen
class Clock:
    """
    The reactor that wakes timers, and the monotonic clock that measures them.

    @ivar reactor: schedules the wake-ups.
    @ivar monotonic: seconds on a clock that never steps; tests pass the fake
        reactor's own C{seconds} so both move together (or not, to model a step).
    """

    reactor: IReactorTime
    monotonic: Callable[[], float] = time.monotonic

    def deadline(self, seconds: float, expired: Callable[[], None]) -> Deadline:
        """
        A stopped L{Deadline} of C{seconds} that calls C{expired} when it runs out.
        """
        return Deadline(self, seconds, expired)

    def callSoon(self, f: Callable[[], None]) -> IDelayedCall:
        """
        Run C{f} at the end of this reactor turn (no time limit involved).
        """
        return self.reactor.callLater(0, f)


class Deadline:
    """
    A limit of a fixed number of seconds that can be started, touched and cancelled.

    A deadline does not keep its owner alive: a bound method given as C{expired} is held
    weakly. The owner holds its deadlines, so a strong reference back would make every
    owner a reference cycle, freed only by a full garbage collection; with a hundred
    bridged streams in flight that held tens of MiB. An owner nothing else holds has
    nothing left to limit.

    @ivar seconds: the length of the limit.
    """

    def __init__(self, clock: Clock, seconds: float, expired: Callable[[], None]) -> None:
        self._clock = clock
        self.seconds = seconds
        self._expired: Callable[[], Callable[[], None] | None] = (
            weakref.WeakMethod(expired) if inspect.ismethod(expired) else lambda: expired
        )
        self._end: float | None = None
        self._call: IDelayedCall | None = None

    @property
    def running(self) -> bool:
        """
        Whether the deadline is counting down.
        """
        return self._end is not None

    def start(self, seconds: float | None = None) -> None:
        """
        Count down from now (again, if it was running).

        @param seconds: a different length from now on, if given.
        """
        if seconds is not None:
            self.seconds = seconds
        self._end = self._clock.monotonic() + self.seconds
        if self._call is not None and self._call.active():
            if self._call.getTime() - self._clock.reactor.seconds() <= self.seconds:
                # Waking early is fine (it sleeps again); only a later wake-up is moved.
                return
            self._call.cancel()
        self._call = self._clock.reactor.callLater(self.seconds, self._due)

    def touch(self, now: float | None = None) -> None:
        """
        Push the end back to a full period from now, cheaply (activity was seen).

        @param now: the monotonic time, if the caller has just read it (one clock read
            then serves every deadline touched by the same event).
        """
        if self._end is not None:
            self._end = (self._clock.monotonic() if now is None else now) + self.seconds

    def remaining(self) -> float | None:
        """
        Seconds left, or L{None} when stopped.
        """
        if self._end is None:
            return None
        return max(0.0, self._end - self._clock.monotonic())

    def stop(self) -> None:
        """
        Stop counting, but leave the reactor's wake-up in place for the next L{start} to
        reuse: for a limit restarted over and over (once per request on a keep-alive
        connection), that saves scheduling and cancelling a call every time. A stopped
        deadline never fires; the wake-up, if it comes, finds it stopped and does nothing.
        Use L{cancel} when it will not be started again soon: the wake-up keeps the
        deadline's owner alive until it is due.
        """
        self._end = None

    def cancel(self) -> None:
        """
        Stop counting and drop the reactor's wake-up; a stopped deadline never fires.
        """
        self._end = None
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _due(self) -> None:
        self._call = None
        if self._end is None:
            return
        left = self._end - self._clock.monotonic()
        if left > 0:
            self._call = self._clock.reactor.callLater(left, self._due)
            return
        self._end = None
        expired = self._expired()
        if expired is not None:
            expired()
