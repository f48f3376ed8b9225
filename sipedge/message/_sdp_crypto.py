# -*- test-case-name: sipedge.test.test_message_sdp -*-
"""
SDES key attributes (RFC 4568): L{KeyParam} and L{Crypto}.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

import attrs

from sipedge.message._sdp_grammar import (
    _KEY_SALT_RE,
    _LIFETIME_RE,
    _MKI_RE,
    _NO_VALIDATOR,
    _TAG_RE,
    _error,
    _is_token,
    _show,
)
from sipedge.message._sdp_lines import (
    Attribute,
)

__all__ = [
    "Crypto",
    "KeyParam",
]


def _key_param_tuple(items: Iterable[KeyParam]) -> tuple[KeyParam, ...]:
    return tuple(items)



@attrs.frozen
class KeyParam:
    """
    One SDES key parameter, C{inline:<key||salt>["|"lifetime]["|"MKI:length]}
    (RFC 4568 6.1, 9.2). C{key_salt} is the base64 text as written,
    C{lifetime} raw (C{2^20}, C{1048576}) or C{None}, C{mki}
    C{(value, length)} or C{None}.
    """

    key_salt: str
    lifetime: str | None = None
    mki: tuple[int, int] | None = None

    @classmethod
    def parse(cls, text: str) -> KeyParam:
        """@raise MessageParseError: on another key method or bad fields."""
        method, colon, info = text.partition(":")
        if not colon or method.lower() != "inline":
            raise _error(f"unsupported a=crypto key method {_show(text)}")
        parts = info.split("|")
        if len(parts) > 3 or _KEY_SALT_RE.fullmatch(parts[0]) is None:
            raise _error(f"bad a=crypto key-info {_show(text)}")
        lifetime = None
        mki = None
        rest = parts[1:]
        if rest and ":" not in rest[0]:
            lifetime = rest.pop(0)
            if _LIFETIME_RE.fullmatch(lifetime) is None:
                raise _error(f"bad a=crypto lifetime {_show(text)}")
        if rest:
            m = _MKI_RE.fullmatch(rest.pop(0))
            if m is None or rest:
                raise _error(f"bad a=crypto MKI {_show(text)}")
            mki = (int(m.group(1)), int(m.group(2)))
        return cls(parts[0], lifetime, mki)

    @classmethod
    def from_bytes(
        cls,
        key_salt: bytes,
        lifetime: str | None = None,
        mki: tuple[int, int] | None = None,
    ) -> KeyParam:
        """A key parameter for the concatenated master key and salt."""
        return cls(base64.b64encode(key_salt).decode("ascii"), lifetime, mki)

    def key_salt_bytes(self) -> bytes:
        """
        The decoded master key and salt (missing base64 padding tolerated).

        @raise MessageParseError: if C{key_salt} is not valid base64.
        """
        text = self.key_salt.rstrip("=")
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise _error(f"bad a=crypto base64 key {_show(self.key_salt)}") from None

    def to_text(self) -> str:
        """The canonical C{inline:...} text."""
        text = f"inline:{self.key_salt}"
        if self.lifetime is not None:
            text += f"|{self.lifetime}"
        if self.mki is not None:
            text += f"|{self.mki[0]}:{self.mki[1]}"
        return text


@attrs.frozen
class Crypto:
    """
    C{a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]}
    (RFC 4568 4, 9.1): C{key_params} holds one or more L{KeyParam}s
    (separated by C{;}), C{session_params} the raw text after them or
    C{None}.
    """

    tag: int
    suite: str
    key_params: tuple[KeyParam, ...] = attrs.field(
        converter=_key_param_tuple, validator=_NO_VALIDATOR
    )
    session_params: str | None = None

    @classmethod
    def parse(cls, value: str) -> Crypto:
        """@raise MessageParseError: if C{value} is not a crypto value."""
        fields = value.split(None, 3)
        if len(fields) < 3:
            raise _error(f"a=crypto needs tag, suite and key-params: {_show(value)}")
        tag, suite, key_params = fields[:3]
        if _TAG_RE.fullmatch(tag) is None:
            raise _error(f"bad a=crypto tag {_show(tag)}")
        if not _is_token(suite):
            raise _error(f"bad a=crypto suite {_show(suite)}")
        params = tuple(KeyParam.parse(kp) for kp in key_params.split(";"))
        session = fields[3].strip() if len(fields) == 4 else None
        return cls(int(tag), suite, params, session or None)

    def to_value(self) -> str:
        """The canonical value after C{a=crypto:}."""
        keys = ";".join(kp.to_text() for kp in self.key_params)
        session = f" {self.session_params}" if self.session_params else ""
        return f"{self.tag} {self.suite} {keys}{session}"

    def to_attribute(self) -> Attribute:
        """This crypto attribute as an L{Attribute}."""
        return Attribute("crypto", self.to_value())
