# -*- test-case-name: sipedge.test.test_admin -*-
"""The admin API's bearer token: read from its file, or made in it once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sipedge.error import ConfigError

__all__ = ["read_or_make_token"]

_MIN_LENGTH = 16


def read_or_make_token(path: Path, *, make: bool) -> str:
    """
    The token in C{path}; if the file is missing and C{make} is true, a new
    random token is written there first (mode 0600).

    @raise ConfigError: naming C{admin.token_file} if the file cannot be
        read or made, or holds fewer than 16 characters.
    """
    if make and not path.exists():
        token = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
        except OSError as e:
            raise ConfigError(f"admin.token_file: cannot create {path}: {e.strerror}") from None
        return token
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"admin.token_file: cannot read {path}: {e}") from None
    if len(token) < _MIN_LENGTH:
        raise ConfigError(
            f"admin.token_file: {path} holds {len(token)} characters; use {_MIN_LENGTH} or more"
        )
    return token
