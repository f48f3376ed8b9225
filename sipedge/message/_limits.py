# -*- test-case-name: sipedge.test.test_message_parser -*-
"""
Hard limits on what the parser accepts from a peer.

A message over a limit is a L{MessageParseError} carrying the status a
server should answer: 513 for a message too large, 413 for a body too
large, 414 for a Request-URI too long, 400 for the rest.
"""

from __future__ import annotations

import attrs

__all__ = ["DEFAULT_LIMITS", "Limits"]


def _positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive integer, not {value!r}")


@attrs.frozen
class Limits:
    """
    @ivar max_message_size: bytes in a whole message (start line, headers and
        body); a UDP datagram cannot exceed 65,535 anyway.
    @ivar max_body_size: bytes in a body.
    @ivar max_header_fields: header field lines in a message.
    @ivar max_line_length: characters in one (unfolded) header field line.
    @ivar max_uri_length: characters in the Request-URI.
    @ivar max_vias: Via values in a message.
    """

    max_message_size: int = attrs.field(default=65535, validator=_positive)
    max_body_size: int = attrs.field(default=65535, validator=_positive)
    max_header_fields: int = attrs.field(default=256, validator=_positive)
    max_line_length: int = attrs.field(default=8192, validator=_positive)
    max_uri_length: int = attrs.field(default=4096, validator=_positive)
    max_vias: int = attrs.field(default=70, validator=_positive)


DEFAULT_LIMITS = Limits()
