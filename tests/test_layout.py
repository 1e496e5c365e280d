"""
The layout rules a reader relies on: every module says which test module verifies it
(C{# -*- test-case-name: tests.test_x -*-} on its first line), and that module exists.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.support.procs import makeTempDir

REPO = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"#\s*-\*-\s*test-case-name:\s*([\w.]+(?:\s*,\s*[\w.]+)*)\s*-\*-")
# Where modules must carry the header: the product, and the test helpers (not the test
# modules themselves, nor package markers).
REQUIRED = ("responses_proxy", "tests")


def headerOf(path: Path) -> list[str] | None:
    """
    @return: the test modules named on the file's first line, or L{None} if it names none.
    """
    with path.open(encoding="utf-8") as f:
        first = f.readline()
    match = HEADER.search(first)
    if match is None:
        return None
    return [name.strip() for name in match.group(1).split(",")]


def missingModules(root: Path, names: list[str]) -> list[str]:
    """
    @return: the names in C{names} that are not test modules under C{root}.
    """
    missing = []
    for name in names:
        parts = name.split(".")
        if not parts[-1].startswith("test_") or not root.joinpath(*parts).with_suffix(
            ".py"
        ).is_file():
            missing.append(name)
    return missing


def _sources() -> list[Path]:
    tops = ("responses_proxy", "tests", "bench", "twisted")
    return sorted(
        p for top in tops for p in (REPO / top).rglob("*.py") if "fixtures" not in p.parts
    )


class TestCaseNameTests(SynchronousTestCase):
    """
    C{test-case-name} headers.
    """

    def test_headersNameRealTestModules(self) -> None:
        """Every test-case-name header names a test module that exists."""
        checked = 0
        wrong = {}
        for path in _sources():
            names = headerOf(path)
            if names is None:
                continue
            checked += 1
            missing = missingModules(REPO, names)
            if missing:
                wrong[str(path.relative_to(REPO))] = missing
        self.assertEqual(wrong, {})
        self.assertGreater(checked, 30)

    def test_everyModuleHasAHeader(self) -> None:
        """Every product module and test helper names its test module."""
        lacking = [
            str(path.relative_to(REPO))
            for path in _sources()
            if path.relative_to(REPO).parts[0] in REQUIRED
            and path.name != "__init__.py"
            and not path.name.startswith("test_")
            and headerOf(path) is None
        ]
        self.assertEqual(lacking, [])

    def test_checkCatchesAMissingModule(self) -> None:
        """The check itself: a header naming a module that does not exist is caught."""
        self.assertEqual(
            missingModules(REPO, ["tests.test_layout", "tests.test_nosuchthing", "tests.sdkcheck"]),
            ["tests.test_nosuchthing", "tests.sdkcheck"],
        )
        path = makeTempDir(self) / "module.py"
        path.write_text("# -*- test-case-name: tests.test_a, tests.test_b -*-\n")
        self.assertEqual(headerOf(path), ["tests.test_a", "tests.test_b"])
        path.write_text('"""no header"""\n')
        self.assertIsNone(headerOf(path))
