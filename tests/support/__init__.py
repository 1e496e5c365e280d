"""
Blocking client-side helpers for the integration tests.

Tests are L{twisted.trial.unittest.SynchronousTestCase}s that run the proxy, the fake
upstream (L{tests.fakeupstream}) and the real Codex CLI as processes on 127.0.0.1:

  - L{tests.support.procs}: start, wait for, stop and read processes (with cleanup);
  - L{tests.support.fake}: L{FakeUpstream}, the control client of the fake upstream,
    and TLS certificates for it;
  - L{tests.support.http}: raw-socket and C{http.client} clients, a response parser,
    and a streaming reader for chunks and SSE events;
  - L{tests.support.events}: Responses API SSE event builders for reply specs;
  - L{tests.support.codex}: L{CodexCLI}, the real C{codex exec}, run hermetically.
"""
