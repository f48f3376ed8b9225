# -*- test-case-name: sipedge.test.test_log -*-
"""
A L{Logger} that keeps its namespace as a class attribute.

C{twisted.logger.Logger} is a descriptor: declared on a class, it logs
under C{module.Class} whatever namespace it was given, so
C{_log = Logger(namespace="sipedge.stage.media-anchor")} would silently
log as C{sipedge.pipeline.stages._media_anchor.MediaAnchorStage}. Operators
filter sipedge's log by the documented namespaces (C{sipedge.stage.<name>},
C{sipedge.relay}, ...), so classes that name theirs use L{NamedLogger}.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

__all__ = ["NamedLogger"]


class NamedLogger(Logger):
    """A class-attribute L{Logger} that logs under the namespace it was given."""

    def __get__(self, instance: object, owner: type | None = None) -> Logger:
        source: Any = owner if instance is None else instance
        return Logger(namespace=self.namespace, source=source, observer=self.observer)
