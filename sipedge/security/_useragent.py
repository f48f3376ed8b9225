# -*- test-case-name: sipedge.test.test_security -*-
"""
Recognizing SIP scanners by their User-Agent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["UserAgentMatcher"]


class UserAgentMatcher:
    """
    Case-insensitive substrings and regular expressions (searched, not
    anchored) that mark a User-Agent as a scanner's.
    """

    def __init__(self, substrings: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        """
        @raise re.error: for a pattern that does not compile.
        """
        self.substrings = tuple(substrings)
        self.patterns = tuple(patterns)
        # One alternation for all the substrings: one scan of the header.
        self._substrings = (
            re.compile("|".join(re.escape(s) for s in self.substrings), re.IGNORECASE)
            if self.substrings
            else None
        )
        self._patterns = tuple(re.compile(p, re.IGNORECASE) for p in self.patterns)

    def match(self, user_agent: str) -> str | None:
        """The part of C{user_agent} that marks a scanner, or C{None}."""
        if self._substrings is not None:
            found = self._substrings.search(user_agent)
            if found is not None:
                return found.group(0)
        for pattern in self._patterns:
            found = pattern.search(user_agent)
            if found is not None:
                return found.group(0)
        return None

    def __bool__(self) -> bool:
        return bool(self.substrings or self.patterns)
