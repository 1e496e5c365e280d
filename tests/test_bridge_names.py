"""
Tests for L{responses_proxy.bridge.names}: flattening namespaced tool names for chat.
"""

from __future__ import annotations

import re

from twisted.trial.unittest import SynchronousTestCase

from responses_proxy.bridge.names import (
    MAX_NAME_LENGTH,
    flattenToolName,
    isValidChatName,
    joinToolName,
)

_CHAT_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class JoinToolNameTests(SynchronousTestCase):
    """
    L{joinToolName} puts exactly one C{__} between namespace and name.
    """

    def test_noNamespace(self):
        """
        A flat tool keeps its name; an empty namespace counts as none.
        """
        self.assertEqual(joinToolName(None, "exec_command"), "exec_command")
        self.assertEqual(joinToolName("", "exec_command"), "exec_command")

    def test_plainNamespace(self):
        """
        C{multi_agent_v1} does not end in C{__}, so one is added.
        """
        self.assertEqual(
            joinToolName("multi_agent_v1", "close_agent"), "multi_agent_v1__close_agent"
        )

    def test_mcpNamespace(self):
        """
        C{mcp__server__} already ends in C{__}: no doubled separator.
        """
        self.assertEqual(joinToolName("mcp__github__", "list_issues"), "mcp__github__list_issues")


class FlattenToolNameTests(SynchronousTestCase):
    """
    L{flattenToolName} gives a valid, deterministic chat name.
    """

    def test_validNamesUnchanged(self):
        """
        Names that are already valid chat names are not aliased.
        """
        self.assertEqual(flattenToolName(None, "apply_patch"), "apply_patch")
        self.assertEqual(
            flattenToolName("multi_agent_v1", "spawn_agent"), "multi_agent_v1__spawn_agent"
        )
        self.assertEqual(flattenToolName("mcp__srv__", "do-it"), "mcp__srv__do-it")

    def test_exactly64Kept(self):
        """
        A joined name of exactly 64 valid characters is kept as is.
        """
        name = "n" * (64 - len("mcp__s__"))
        self.assertEqual(flattenToolName("mcp__s__", name), "mcp__s__" + name)

    def test_longNameAliased(self):
        """
        A joined name over 64 characters gets a valid alias of at most 64 characters that
        keeps a readable prefix.
        """
        name = "get_" + "very_" * 20 + "long_thing"
        alias = flattenToolName("mcp__server__", name)
        self.assertLessEqual(len(alias), MAX_NAME_LENGTH)
        self.assertTrue(_CHAT_NAME.match(alias))
        self.assertTrue(alias.startswith("mcp__server__get_very_"))

    def test_oddCharactersAliased(self):
        """
        Characters outside C{[A-Za-z0-9_-]} (dots, slashes, spaces, non-ASCII) are
        replaced and the alias gets a hash suffix.
        """
        for namespace, name in [
            ("mcp__fs__", "read.file"),
            (None, "tool/with/slash"),
            ("mcp__x__", "näme"),
            (None, "has space"),
        ]:
            alias = flattenToolName(namespace, name)
            self.assertTrue(_CHAT_NAME.match(alias), alias)
            self.assertNotEqual(alias, joinToolName(namespace, name))
            self.assertRegex(alias, r"_[0-9a-f]{10}\Z")

    def test_deterministic(self):
        """
        The alias depends on the full name alone: the same in every call (and thus every
        request), whatever other tools exist.
        """
        name = "x" * 100
        self.assertEqual(flattenToolName("mcp__a__", name), flattenToolName("mcp__a__", name))
        self.assertEqual(
            flattenToolName("mcp__a__", name),
            "mcp__a__" + "x" * 45 + "_" + flattenToolName("mcp__a__", name)[-10:],
        )

    def test_distinctNamesDistinctAliases(self):
        """
        Names differing only beyond the cut, or only in the replaced characters, still
        get different aliases.
        """
        base = "y" * 80
        self.assertNotEqual(flattenToolName(None, base + "a"), flattenToolName(None, base + "b"))
        self.assertNotEqual(flattenToolName(None, "a.b"), flattenToolName(None, "a/b"))
        self.assertNotEqual(flattenToolName(None, "a.b"), "a_b")

    def test_namespaceSplitDoesNotMatter(self):
        """
        The alias is derived from the joined name, so the same joined name gives the same
        chat name (as for valid names).
        """
        self.assertEqual(flattenToolName("mcp__s__", "a.b"), flattenToolName(None, "mcp__s__a.b"))

    def test_isValidChatName(self):
        """
        L{isValidChatName} accepts only C{[A-Za-z0-9_-]{1,64}}.
        """
        self.assertTrue(isValidChatName("a-b_C9"))
        self.assertFalse(isValidChatName(""))
        self.assertFalse(isValidChatName("a" * 65))
        self.assertFalse(isValidChatName("a.b"))
        self.assertFalse(isValidChatName("ab\n"))
