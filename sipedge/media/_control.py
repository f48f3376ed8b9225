# -*- test-case-name: sipedge.test.test_media_control -*-
"""
The relay control protocol, sans-IO: how L{IMediaRelay} calls, their
replies and the relay's L{SessionEnd} events travel between a proxy and
C{twistd sipedge-relay} (C{doc/relay-protocol.md} is the specification).

 - framing: one JSON object per line, at most C{max_line} bytes
   (L{LineFramer}, L{encode_message}, L{decode_message});
 - values: every L{sipedge.media} value as a JSON object with one member
   per attrs field, enums by their value, tuples as arrays
   (L{encode_value}, L{decode_value}); decoding is strict (unknown or
   missing fields, wrong types are L{ControlProtocolError}s);
 - the handshake: C{hello} (the relay's challenge), C{auth} (the client's
   HMAC-SHA256 answer and its own challenge), C{welcome} (the relay's
   answer to that), so each side proves it holds the shared secret
   (L{client_proof}, L{server_proof});
 - calls: C{request}, C{result}, C{error} (L{METHODS}, L{encode_error},
   L{decode_error}); events: C{event} (L{session_end_event}).

No Twisted, no sockets, no clock here.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

from sipedge.media._errors import (
    ControlProtocolError,
    MediaError,
    MediaOfferError,
    PortsExhausted,
    RelayTimeout,
    RelayUnavailable,
    ReofferUnsupported,
    RtpParseError,
    SdesError,
    SessionExists,
    SrtpError,
    UnknownSession,
)
from sipedge.media._values import (
    MediaOffer,
    Party,
    RelayAllocation,
    RelayStats,
    SessionEnd,
    SessionStats,
)

__all__ = [
    "CHALLENGE_SIZE",
    "ERROR_CLASSES",
    "MAX_ID",
    "MAX_LINE",
    "METHODS",
    "PROTOCOL",
    "VERSIONS",
    "LineFramer",
    "Method",
    "auth_message",
    "client_proof",
    "decode_error",
    "decode_message",
    "decode_session_end",
    "decode_value",
    "encode_error",
    "encode_message",
    "encode_value",
    "error_message",
    "hello_message",
    "hex_field",
    "proofs_match",
    "request_id",
    "request_message",
    "result_message",
    "server_proof",
    "session_end_event",
    "welcome_message",
]

#: The protocol's name, in C{hello}.
PROTOCOL = "sipedge-relay"

#: The protocol versions this code speaks: 2 adds C{reoffer}, C{withdraw}
#: and C{MediaOffer.source}.
VERSIONS = (1, 2)

#: The default longest line (bytes, newline excluded).
MAX_LINE = 65536

#: Bytes of each side's random challenge.
CHALLENGE_SIZE = 32

#: The largest request id (JSON numbers are exact up to 2**53).
MAX_ID = 2**53 - 1


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------


class LineFramer:
    """
    Splits a byte stream into lines ending with C{\\n} (a C{\\r} before it
    is dropped). A line longer than C{max_line} bytes, or that many bytes
    without a newline, is an error: the stream cannot be trusted after it.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buffer = b""

    @property
    def buffered(self) -> bytes:
        """The bytes of an unfinished line."""
        return self._buffer

    def feed(self, data: bytes) -> list[bytes]:
        """
        The complete lines in C{data} (after what was buffered), in order.

        @raise ControlProtocolError: (C{too-long}) if a line is too long.
        """
        buffer = self._buffer + data
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if len(line) > self.max_line:
                self._buffer = b""
                raise ControlProtocolError(
                    f"a line of {len(line)} bytes is over the limit of {self.max_line}", "too-long"
                )
        if len(self._buffer) > self.max_line:
            size = len(self._buffer)
            self._buffer = b""
            raise ControlProtocolError(
                f"{size} bytes without a newline is over the limit of {self.max_line}", "too-long"
            )
        return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def encode_message(message: Mapping[str, Any]) -> bytes:
    """One message as its line (compact JSON, newline included)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def decode_message(line: bytes) -> dict[str, Any]:
    """
    One line as a message: a JSON object with a string C{type}.

    @raise ControlProtocolError: (C{malformed}) if it is not.
    """
    try:
        message = json.loads(line.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise ControlProtocolError(f"not a JSON line: {e}") from None
    if not isinstance(message, dict):
        raise ControlProtocolError(f"expected a JSON object, got {_json_type(message)}")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ControlProtocolError("a message needs a string 'type'")
    return message


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


def _json_type(value: object) -> str:
    for kind, name in (
        (bool, "a boolean"),
        (int, "a number"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
    ):
        if isinstance(value, kind):
            return name
    return "null"


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """
    A L{sipedge.media} value (or a tuple, mapping or scalar of them) as
    JSON data: attrs instances as objects with every field (SDES keys
    included: the control channel carries them, see the protocol's
    security section), enums as their value, tuples as arrays.
    """
    if attrs.has(type(value)):
        # A field a later version added is left out while it holds its
        # default, so a value that does not use it decodes in version 1.
        return {
            f.name: encode_value(getattr(value, f.name))
            for f in attrs.fields(type(value))
            if not ("since" in f.metadata and getattr(value, f.name) == f.default)
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [encode_value(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise TypeError(f"cannot encode {type(value).__name__} for the control protocol")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def decode_value(kind: Any, data: Any, path: str = "value") -> Any:
    """
    JSON data as a value of type C{kind} (an attrs class from
    L{sipedge.media._values}, an enum, C{str}, C{int}, C{float}, C{bool},
    C{X | None}, C{tuple[X, ...]}, C{Mapping[str, X]}).

    @param path: where the data is, for error messages
        (C{params.offer.streams[0].port}).
    @raise ControlProtocolError: (C{bad-params}) if the data does not
        decode, naming C{path}.
    """
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if data is None and type(None) in options:
            return None
        others = [o for o in options if o is not type(None)]
        if len(others) == 1:
            return decode_value(others[0], data, path)
        raise TypeError(f"cannot decode {kind}")  # not used by the values
    if origin is tuple:
        if not isinstance(data, list):
            raise _bad(path, "an array", data)
        (item,) = [a for a in typing.get_args(kind) if a is not Ellipsis]
        return tuple(decode_value(item, v, f"{path}[{i}]") for i, v in enumerate(data))
    if origin in (Mapping, dict):
        if not isinstance(data, dict):
            raise _bad(path, "an object", data)
        _, item = typing.get_args(kind)
        return {k: decode_value(item, v, f"{path}.{k}") for k, v in data.items()}
    if isinstance(kind, type) and attrs.has(kind):
        return _decode_attrs(kind, data, path)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(data)
        except ValueError:
            names = ", ".join(repr(m.value) for m in kind)
            raise ControlProtocolError(
                f"{path}: expected one of {names}, not {data!r}", "bad-params"
            ) from None
    if kind is bool:
        if not isinstance(data, bool):
            raise _bad(path, "true or false", data)
        return data
    if kind is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise _bad(path, "an integer", data)
        return data
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise _bad(path, "a number", data)
        return float(data)
    if kind is str:
        if not isinstance(data, str):
            raise _bad(path, "a string", data)
        return data
    raise TypeError(f"cannot decode {kind!r}")


def _decode_attrs(kind: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise _bad(path, f"an object ({kind.__name__})", data)
    fields = attrs.fields_dict(kind)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ControlProtocolError(
            f"{path}: unknown field {unknown[0]!r} in {kind.__name__}", "bad-params"
        )
    hints = _hints(kind)
    values = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is attrs.NOTHING:
                raise ControlProtocolError(
                    f"{path}: {kind.__name__} needs the field {name!r}", "bad-params"
                )
            continue
        values[name] = decode_value(hints[name], data[name], f"{path}.{name}")
    try:
        return kind(**values)
    except (TypeError, ValueError) as e:
        raise ControlProtocolError(f"{path}: {e}", "bad-params") from None


def _bad(path: str, expected: str, data: object) -> ControlProtocolError:
    return ControlProtocolError(
        f"{path}: expected {expected}, got {_json_type(data)}", "bad-params"
    )


# --------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------


@attrs.frozen
class Method:
    """
    One L{IMediaRelay} call: its parameters (name and type, in the
    method's order), the type of its result, and the protocol version
    that brought it.
    """

    name: str
    params: tuple[tuple[str, Any], ...]
    result: Any
    since: int = 1

    def encode_params(self, *args: Any) -> dict[str, Any]:
        """The C{params} object of a request."""
        return {name: encode_value(arg) for (name, _), arg in zip(self.params, args, strict=True)}

    def decode_params(self, params: Any) -> tuple[Any, ...]:
        """
        A request's C{params} as the method's arguments.

        @raise ControlProtocolError: (C{bad-params}) naming the parameter.
        """
        if not isinstance(params, dict):
            raise _bad("params", "an object", params)
        known = {name for name, _ in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ControlProtocolError(
                f"params: {self.name} takes no parameter {unknown[0]!r}", "bad-params"
            )
        args = []
        for name, kind in self.params:
            if name not in params:
                raise ControlProtocolError(
                    f"params: {self.name} needs the parameter {name!r}", "bad-params"
                )
            args.append(decode_value(kind, params[name], f"params.{name}"))
        return tuple(args)

    def decode_result(self, data: Any) -> Any:
        """A C{result} as the method's result."""
        return decode_value(self.result, data, "result")


#: The calls, by name.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("allocate", (("session_key", str), ("offer", MediaOffer)), RelayAllocation),
        Method("update", (("session_key", str), ("answer", MediaOffer)), RelayAllocation),
        Method(
            "reoffer",
            (("session_key", str), ("offer", MediaOffer), ("offerer", Party)),
            RelayAllocation,
            since=2,
        ),
        Method("withdraw", (("session_key", str),), RelayAllocation, since=2),
        Method("release", (("session_key", str),), SessionStats | None),
        Method("sessions", (), Mapping[str, SessionStats]),
        Method("stats", (), RelayStats),
    )
}


def request_message(request_id: int, method: str, *args: Any) -> dict[str, Any]:
    """A C{request} message."""
    return {
        "type": "request",
        "id": request_id,
        "method": method,
        "params": METHODS[method].encode_params(*args),
    }


def request_id(message: Mapping[str, Any]) -> int:
    """
    The C{id} of a C{request}, C{result} or C{error}.

    @raise ControlProtocolError: (C{malformed}) if it is not an integer
        from 0 to 2**53 - 1.
    """
    value = message.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ControlProtocolError(f"'id' must be an integer from 0 to {MAX_ID}, not {value!r}")
    return value


def result_message(request_id: int, method: str, value: Any) -> dict[str, Any]:
    """A C{result} message."""
    return {"type": "result", "id": request_id, "result": encode_value(value)}


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

#: The error classes a reply may name, re-raised as themselves.
ERROR_CLASSES: dict[str, type[MediaError]] = {
    cls.__name__: cls
    for cls in (
        MediaError,
        MediaOfferError,
        PortsExhausted,
        SessionExists,
        UnknownSession,
        SdesError,
        SrtpError,
        RtpParseError,
        RelayUnavailable,
        RelayTimeout,
        ReofferUnsupported,
        ControlProtocolError,
    )
}


def encode_error(error: BaseException) -> dict[str, Any]:
    """
    The C{error} member of an C{error} message: a L{MediaError}'s class
    name, message and C{status_hint} (and C{code} for a protocol error).
    Anything else is reported as a bare C{MediaError} with status 500 and
    no detail (it is a bug in the relay, logged there).
    """
    if not isinstance(error, MediaError):
        return {"class": "MediaError", "message": "internal relay error", "status_hint": 500}
    name = type(error).__name__
    if name not in ERROR_CLASSES:
        name = next(c.__name__ for c in type(error).__mro__ if c.__name__ in ERROR_CLASSES)
    encoded: dict[str, Any] = {
        "class": name,
        "message": str(error),
        "status_hint": int(error.status_hint),
    }
    if isinstance(error, ControlProtocolError):
        encoded["code"] = error.code
    return encoded


def decode_error(data: Any) -> MediaError:
    """
    An C{error} member as the exception to raise: the class it names (an
    unknown one as L{MediaError}), with its message and C{status_hint}.
    """
    if not isinstance(data, dict):
        return ControlProtocolError(f"an error reply needs an 'error' object, got {data!r}")
    name = data.get("class")
    text = data.get("message")
    text = text if isinstance(text, str) else "(no message)"
    cls = ERROR_CLASSES.get(name if isinstance(name, str) else "", MediaError)
    error: MediaError
    if cls is ControlProtocolError:
        code = data.get("code")
        error = ControlProtocolError(text, code if isinstance(code, str) else "malformed")
    else:
        error = cls(text)
    hint = data.get("status_hint")
    if (
        isinstance(hint, int)
        and not isinstance(hint, bool)
        and 100 <= hint <= 699
        and hint != error.status_hint
    ):
        error.status_hint = hint
    return error


def error_message(request_id: int | None, error: BaseException) -> dict[str, Any]:
    """An C{error} message; C{request_id} is C{None} for no request."""
    return {"type": "error", "id": request_id, "error": encode_error(error)}


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def session_end_event(end: SessionEnd) -> dict[str, Any]:
    """The C{event} message of a session's end."""
    return {"type": "event", "event": "session-end", "data": encode_value(end)}


def decode_session_end(message: Mapping[str, Any]) -> SessionEnd:
    """
    A C{session-end} event's L{SessionEnd}.

    @raise ControlProtocolError: if it does not decode.
    """
    end: SessionEnd = decode_value(SessionEnd, message.get("data"), "data")
    return end


# --------------------------------------------------------------------------
# Handshake
# --------------------------------------------------------------------------


def hello_message(challenge: bytes) -> dict[str, Any]:
    """The relay's first line: the protocol, its versions, its challenge."""
    return {
        "type": "hello",
        "protocol": PROTOCOL,
        "versions": list(VERSIONS),
        "challenge": challenge.hex(),
    }


def auth_message(version: int, proof: bytes, challenge: bytes) -> dict[str, Any]:
    """The client's answer to C{hello}, with its own challenge."""
    return {"type": "auth", "version": version, "proof": proof.hex(), "challenge": challenge.hex()}


def welcome_message(proof: bytes) -> dict[str, Any]:
    """The relay's answer to a good C{auth}."""
    return {"type": "welcome", "proof": proof.hex()}


def _proof(secret: bytes, role: bytes, version: int, relay: bytes, client: bytes) -> bytes:
    text = b"%s/%d %s %s %s" % (PROTOCOL.encode(), version, role, relay.hex().encode(),
                                client.hex().encode())
    return hmac.new(secret, text, hashlib.sha256).digest()


def client_proof(secret: bytes, version: int, relay: bytes, client: bytes) -> bytes:
    """
    HMAC-SHA256 with the shared secret of
    C{"sipedge-relay/<version> client <relay challenge hex> <client challenge hex>"}.
    """
    return _proof(secret, b"client", version, relay, client)


def server_proof(secret: bytes, version: int, relay: bytes, client: bytes) -> bytes:
    """The same with C{server} in place of C{client}: the relay's proof."""
    return _proof(secret, b"server", version, relay, client)


def hex_field(message: Mapping[str, Any], name: str, size: int) -> bytes:
    """
    A hexadecimal member of C{size} bytes.

    @raise ControlProtocolError: if it is missing or not that.
    """
    value = message.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError
        data = bytes.fromhex(value)
    except ValueError:
        raise ControlProtocolError(f"{name!r} must be {size} bytes in hexadecimal") from None
    if len(data) != size:
        raise ControlProtocolError(f"{name!r} must be {size} bytes in hexadecimal")
    return data


def proofs_match(expected: bytes, given: bytes) -> bool:
    """Compare two proofs in constant time."""
    return hmac.compare_digest(expected, given)
