# -*- test-case-name: tests.test_real_server_replays -*-
"""
Mark a test that fails today because of a known bug, so it runs (and is counted) but
does not turn the run red, and turns it red the day the bug is fixed.

Trial's own C{todo} attribute breaks under pytest (its result adapter rejects trial's
expected failures), and pytest ignores C{unittest.expectedFailure} on trial's test
cases. So the marker is pytest's strict C{xfail} when pytest runs the test (an
unexpected pass fails the run: "[XPASS(strict)]"), and trial's C{todo} under trial.
Only assertion failures count as the expected failure: an error (a crash, a timeout of
a helper raising something else) still fails. So a known-bug test checks what the case
needs but is not the bug with L{precondition}, which raises L{PreconditionFailed}, not an
assertion: a case that stopped showing the bug cannot pass for the expected failure.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])


def knownBug(reason: str) -> Callable[[_F], _F]:
    """
    @param reason: the bug, named precisely (what is wrong, where the spec says so).
    @return: a decorator for a test method.
    """

    def decorate(f: _F) -> _F:
        if "pytest" in sys.modules:
            import pytest

            return pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError)(f)
        f.todo = ((AssertionError,), reason)  # type: ignore[attr-defined]
        return f

    return decorate


class PreconditionFailed(Exception):
    """
    A known-bug test could not set up the situation that shows the bug. Deliberately
    not an L{AssertionError}: it fails the run instead of counting as the expected
    failure.
    """


def precondition(condition: object, message: str) -> None:
    """
    @raise PreconditionFailed: with C{message} if C{condition} is false.
    """
    if not condition:
        raise PreconditionFailed(message)
