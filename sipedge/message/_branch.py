# -*- test-case-name: sipedge.test.test_message_branch -*-
"""
Branches for the requests we forward (RFC 3261 16.6 item 8), built so that
loop detection (16.3 item 4) can recognise a request we forwarded before.

Our branch is C{z9hG4bK-se-<digest>.<n>}: the digest covers what
identifies the request as we received it (Request-URI, Call-ID, CSeq
number, tags, Route, Proxy-Require, Proxy-Authorization), and C{n} tells
forked branches apart. The top Via is left out of the digest: a request that comes back
through another proxy has a different top Via, and must still be seen as a
loop when nothing else changed (a spiral changes the Request-URI).
"""

from __future__ import annotations

import hashlib

from sipedge.message._message import Request

__all__ = ["BRANCH_PREFIX", "branch_digest", "digest_of_branch", "make_branch"]

BRANCH_PREFIX = "z9hG4bK-se-"


# The fields the digest covers: the first value of each, and for the last
# three every value (several fields join with NUL).
_DIGESTED = frozenset(
    ("call-id", "cseq", "from", "to", "route", "proxy-require", "proxy-authorization")
)
_JOINED = frozenset(("route", "proxy-require", "proxy-authorization"))


def branch_digest(request: Request) -> str:
    """The loop-detection digest of a received request."""
    # One pass over the fields rather than a look-up per name.
    first: dict[str, str] = {}
    more: dict[str, list[str]] | None = None
    for key, _, value in request.headers.fields:
        if key in _DIGESTED:
            if key not in first:
                first[key] = value
            elif key in _JOINED:
                if more is None:
                    more = {}
                more.setdefault(key, [first[key]]).append(value)
    if more is not None:
        for key, values in more.items():
            first[key] = "\x00".join(values)
    get = first.get
    cseq = get("cseq")
    parts = [
        request.uri,
        get("call-id") or "",
        cseq.split(" ", 1)[0] if cseq else "",
        _tag(get("from")),
        _tag(get("to")),
        # 16.6 item 8: Route counts too, so a request that comes back
        # after a Route took it elsewhere (an application server) is a
        # spiral, not a loop.
        get("route", ""),
        get("proxy-require", ""),
        get("proxy-authorization", ""),
    ]
    data = "\x01".join(parts).encode("utf-8", "surrogateescape")
    return hashlib.blake2s(data, digest_size=10).hexdigest()


def _tag(value: str | None) -> str:
    if not value:
        return ""
    lower = value.lower()
    i = lower.rfind(";tag=")
    if i < 0:
        return ""
    return value[i + 5 :].split(";", 1)[0].strip()


def make_branch(digest: str, index: int) -> str:
    """The branch for the C{index}th branch of a forwarded request."""
    return f"{BRANCH_PREFIX}{digest}.{index}"


def digest_of_branch(branch: str | None) -> str | None:
    """The digest inside one of our branches, or C{None} if not ours."""
    if not branch or not branch.startswith(BRANCH_PREFIX):
        return None
    return branch[len(BRANCH_PREFIX) :].split(".", 1)[0]
