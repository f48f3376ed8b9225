# -*- test-case-name: sipedge.test.test_accounting -*-
"""
C{[accounting]}: where call records go, as a frozen section in the style of
L{sipedge.config} (errors name C{accounting.<key>}). This module must not
import L{sipedge.config}.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from sipedge._config_values import InvalidValue
from sipedge._config_values import describe as _describe

__all__ = ["AccountingConfig"]


def _path(value: object) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("path", f"expected a file name, got {_describe(value)}")
    return Path(value)


@attrs.frozen
class AccountingConfig:
    """
    C{[accounting]}.

    @ivar path: the JSON-lines file call records are appended to, or
        C{None} (the default) for no records.
    """

    path: Path | None = attrs.field(default=None, converter=_path)
