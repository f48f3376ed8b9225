# -*- test-case-name: sipedge.test.test_admin -*-
"""
C{[admin]}: the admin API's address and bearer token, as a frozen section
in the style of L{sipedge.config} (errors name C{admin.<key>}). This module
must not import L{sipedge.config}.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from sipedge._config_values import InvalidValue
from sipedge._config_values import describe as _describe
from sipedge.metrics import TcpListen

__all__ = ["TOKEN_FILE", "AdminConfig"]

#: The token file made in the state directory when none is configured.
TOKEN_FILE = "admin.token"


def _listen(value: object) -> TcpListen | None:
    if value is None or isinstance(value, TcpListen):
        return value
    try:
        return TcpListen.parse(value)
    except ValueError as e:
        raise InvalidValue("listen", str(e)) from None


def _path(value: object) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("token_file", f"expected a file name, got {_describe(value)}")
    return Path(value)


@attrs.frozen
class AdminConfig:
    """
    C{[admin]}.

    @ivar listen: where the HTTP JSON API is served, or C{None} (the
        default) for no admin API.
    @ivar token_file: the file holding the bearer token, or C{None} for
        L{TOKEN_FILE} in the state directory, made on first start.
    """

    listen: TcpListen | None = attrs.field(default=None, converter=_listen)
    token_file: Path | None = attrs.field(default=None, converter=_path)
