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


def _path(key: str, value: object) -> Path | None:
    if value is None or isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(key, f"expected a file name, got {_describe(value)}")
    return Path(value)


def _token_file(value: object) -> Path | None:
    return _path("token_file", value)


def _certificate(value: object) -> Path | None:
    return _path("certificate", value)


def _private_key(value: object) -> Path | None:
    return _path("private_key", value)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue("tls", f"expected true or false, got {_describe(value)}")
    return value


@attrs.frozen
class AdminConfig:
    """
    C{[admin]}.

    @ivar listen: where the HTTP JSON API is served, or C{None} (the
        default) for no admin API.
    @ivar token_file: the file holding the bearer token, or C{None} for
        L{TOKEN_FILE} in the state directory, made on first start.
    @ivar tls: serve the API over TLS (HTTPS) with sipedge's own
        certificate (C{[tls]}'s, or the self-signed one).
    @ivar certificate: a certificate (PEM, then any intermediates) of the
        API's own, for HTTPS; with C{private_key}. Implies TLS.
    @ivar private_key: its private key (PEM).
    """

    listen: TcpListen | None = attrs.field(default=None, converter=_listen)
    token_file: Path | None = attrs.field(default=None, converter=_token_file)
    tls: bool = attrs.field(default=False, converter=_flag)
    certificate: Path | None = attrs.field(default=None, converter=_certificate)
    private_key: Path | None = attrs.field(default=None, converter=_private_key)

    def __attrs_post_init__(self) -> None:
        if (self.certificate is None) != (self.private_key is None):
            missing = "private_key" if self.private_key is None else "certificate"
            raise InvalidValue(missing, "certificate and private_key go together")

    @property
    def secure(self) -> bool:
        """Whether the API is served over TLS."""
        return self.tls or self.certificate is not None
