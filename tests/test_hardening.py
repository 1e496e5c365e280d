"""
Tests for L{responses_proxy.hardening}: process hardening and resource settings.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy import hardening

KEY = b"Bearer sk-TESTKEY0123456789abcdefXYZ"


class HardeningTests(SynchronousTestCase):
    """
    L{hardening}: pure helpers here; the process effects are checked in a child.
    """

    def test_envKeysWithPrefixHandlesNonUTF8(self) -> None:
        """Names that are not UTF-8 are still matched as bytes."""
        keys = [b"LD_\xf0", b"R\xd6DBURK", b"PATH", b"LD_TEST", b"DYLD_FOO"]
        self.assertEqual(hardening.envKeysWithPrefix(keys, b"LD_"), [b"LD_\xf0", b"LD_TEST"])

    def test_appliedInAChildProcess(self) -> None:
        """After hardenProcess: not dumpable, core limit 0/0, no LD_* left."""
        code = (
            "import os, resource\n"
            "from responses_proxy import hardening\n"
            "hardening.hardenProcess()\n"
            "print(hardening.isDumpable(), resource.getrlimit(resource.RLIMIT_CORE),"
            " sorted(k for k in os.environ if k.startswith('LD_')))\n"
        )
        env = dict(os.environ, LD_SOMETHING="1", LD_OTHER="2")
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        self.assertEqual(out, "False (0, 0) []")


class FileLimitTests(SynchronousTestCase):
    """
    The open-files limit is raised to the hard limit at start-up.
    """

    def test_raisedToHardLimit(self) -> None:
        """A low soft limit is raised to the hard one (checked in a child process)."""
        code = (
            "import resource\n"
            "from responses_proxy.hardening import raiseFileLimit\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
            "print(raiseFileLimit() == resource.getrlimit(resource.RLIMIT_NOFILE)[1])\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        self.assertEqual(out, "True")
