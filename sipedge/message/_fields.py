# -*- test-case-name: sipedge.test.test_message_fields -*-
"""
Small header field values: CSeq, unsigned integers (Max-Forwards, Expires,
Content-Length, ...) and option-tag lists (Require, Proxy-Require,
Supported, Unsupported) (RFC 3261 sections 20 and 25.1).

   CSeq           =  "CSeq" HCOLON 1*DIGIT LWS Method
   Max-Forwards   =  "Max-Forwards" HCOLON 1*DIGIT
   Expires        =  "Expires" HCOLON delta-seconds
   Content-Length =  ( "Content-Length" / "l" ) HCOLON 1*DIGIT
   Require        =  "Require" HCOLON option-tag *(COMMA option-tag)
   Supported      =  ( "Supported" / "k" ) HCOLON
                     [option-tag *(COMMA option-tag)]
   option-tag     =  token
"""

from __future__ import annotations

import re

import attrs

from sipedge.error import MessageParseError

__all__ = [
    "MAX_CSEQ",
    "MAX_DELTA_SECONDS",
    "MAX_MAX_FORWARDS",
    "CSeq",
    "parse_cseq",
    "parse_option_tags",
    "parse_uint",
]

#: The largest CSeq number accepted. RFC 3261 8.1.1.5 wants it below 2**31
#: when sent; RFC 4475 scalar02 rejects only what a 32-bit
#: unsigned integer cannot hold.
MAX_CSEQ = 2**32 - 1
#: delta-seconds (RFC 3261 20.19, 20.10): at most 2**32-1.
MAX_DELTA_SECONDS = 2**32 - 1
#: Max-Forwards is an integer in the range 0-255 (RFC 3261 20.22).
MAX_MAX_FORWARDS = 255

_WS_CHARS = " \t\r\n"
# CSeq = 1*DIGIT LWS Method; Method = INVITEm / ... / extension-method;
# extension-method = token
_CSEQ_RE = re.compile(r"[ \t\r\n]*([0-9]+)[ \t\r\n]+([A-Za-z0-9\-.!%*_+`'~]+)[ \t\r\n]*\Z")
# 1*DIGIT
_UINT_RE = re.compile(r"[ \t\r\n]*([0-9]+)[ \t\r\n]*\Z")
# option-tag = token
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")


def _show(text: str) -> str:
    """C{repr(text)}, shortened for an error message."""
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


def _to_int(digits: str, name: str, maximum: int) -> int:
    """
    The value of C{1*DIGIT} (leading zeros allowed), never building a huge
    int from a long string.

    @raise MessageParseError: if it is above C{maximum}.
    """
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(maximum)) or int(significant) > maximum:
        raise MessageParseError(f"{name} value {_show(digits)} is above {maximum}")
    return int(significant)


@attrs.frozen
class CSeq:
    """
    A CSeq value (RFC 3261 20.16): the sequence number and the method
    (case-sensitive).
    """

    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"

    def next(self, method: str | None = None) -> CSeq:
        """The CSeq of the next request in the dialog (RFC 3261 12.2.1.1)."""
        return CSeq(self.number + 1, self.method if method is None else method)


def parse_cseq(text: str) -> CSeq:
    """
    Parse a CSeq value: C{1*DIGIT LWS Method}. Leading zeros are allowed
    (RFC 4475 wsinv: C{0009 INVITE}); the number must fit in 32 bits
    (RFC 4475 scalar02).

    @raise MessageParseError: if C{text} is not a CSeq value.
    """
    m = _CSEQ_RE.match(text)
    if m is None:
        raise MessageParseError(f"malformed CSeq {_show(text)}")
    number, method = m.groups()
    return CSeq(_to_int(number, "CSeq", MAX_CSEQ), method)


def parse_uint(text: str, name: str, maximum: int = MAX_DELTA_SECONDS) -> int:
    """
    Parse a header value that is C{1*DIGIT} (Max-Forwards with C{maximum}
    255, Expires, Min-Expires, Content-Length, ...). Leading zeros are
    allowed (C{0068} is 68).

    @param name: the header field name, for the error reason.
    @raise MessageParseError: if C{text} is not digits or is above
        C{maximum}.
    """
    m = _UINT_RE.match(text)
    if m is None:
        raise MessageParseError(f"malformed {name} {_show(text)}")
    return _to_int(m.group(1), name, maximum)


def parse_option_tags(text: str) -> tuple[str, ...]:
    """
    Parse C{[option-tag *(COMMA option-tag)]} (Require, Proxy-Require,
    Supported, Unsupported). An empty value gives C{()} (an empty Supported
    is valid; a Require needs at least one tag, which the caller checks).

    @raise MessageParseError: on an empty element or a tag that is not a
        token.
    """
    if not text.strip(_WS_CHARS):
        return ()
    tags = []
    for part in text.split(","):
        tag = part.strip(_WS_CHARS)
        if _TOKEN_RE.match(tag) is None:
            if not tag:
                raise MessageParseError(f"empty option tag in {_show(text)}")
            raise MessageParseError(f"bad option tag {_show(tag)}")
        tags.append(tag)
    return tuple(tags)
