# -*- test-case-name: tests.test_plugin -*-
"""
C{python -m responses_proxy}: the same as the C{codex-responses-api-proxy} script.
"""

from responses_proxy.cli import run

run()
