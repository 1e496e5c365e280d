# -*- test-case-name: tests.test_cli -*-
"""
The C{codex-responses-api-proxy} console script (and C{python -m responses_proxy}).

It runs the same service as the twistd plugin, in the foreground, logging to stderr. The
service is stopped from a before-shutdown trigger, which lets C{/shutdown} flush its reply
before the reactor drops connections.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEventAsClassicLogText,
    formatTime,
    globalLogBeginner,
)
from twisted.python import usage

from responses_proxy.tap import PROG, Options, makeService


class _SecondsFormatter:
    """
    C{textFileLogObserver}'s format (C{"{timeStamp} [{system}] {event}\n"}), made cheap
    for the access line, which is most of what is logged: the timestamp (whole seconds)
    is rendered once per second instead of once per line, and a line the proxy rendered
    itself (format C{{line}}) is not parsed again by Twisted's formatter. Together they
    were two thirds of the line's cost.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = ""

    def formatTime(self, when: float | None) -> str:
        if when is None:
            return formatTime(when)
        second = int(when)
        if second != self._second:
            self._second, self._text = second, formatTime(second)
        return self._text

    def __call__(self, event: LogEvent) -> str | None:
        line = event.get("line")
        level = event.get("log_level")
        if (
            event.get("log_format") == "{line}"
            and isinstance(line, str)
            and line
            and level is not None
            and "log_system" not in event
            and "log_failure" not in event
        ):
            stamp = self.formatTime(event.get("log_time"))
            system = f"{event.get('log_namespace', '-')}#{level.name}"
            return f"{stamp} [{system}] {line}".replace("\n", "\n\t") + "\n"
        return formatEventAsClassicLogText(event, formatTime=self.formatTime)


def _startLogging() -> None:
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
    text = FileLogObserver(sys.stderr, _SecondsFormatter())
    observer = FilteringLogObserver(text, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _parse(options: Options, argv: list[str]) -> int | None:
    """
    Parse the command line (which reads the key); an exit status if it ends here
    (C{--help}, C{--version}, a usage error).
    """
    try:
        options.parseOptions(argv)
    except usage.UsageError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        print(options.getSynopsis(), file=sys.stderr)
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """
    Parse the command line, read the key from stdin, serve until stopped.

    @return: the exit status (0 after C{/shutdown} or a signal).
    """
    options = Options()
    status = _parse(options, list(sys.argv[1:] if argv is None else argv))
    if status is not None:
        return status

    from twisted.internet import reactor

    service = makeService(options, reactor)
    _startLogging()
    service.privilegedStartService()
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    port = service.listening.boundPort
    print(f"{PROG} listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    reactor.run()
    return 0


def run() -> None:
    """
    Console-script wrapper: exit with L{main}'s status.
    """
    sys.exit(main())


if __name__ == "__main__":
    run()
