# -*- test-case-name: sipedge.test.test_relay_tap -*-
"""
Where the relay's control port is and how its secret is kept: the
C{[relay]} section (read by C{twistd sipedge-relay}) and the helpers the
C{[media] relay*} keys of the proxy use.

   [relay]
   control = "tcp:127.0.0.1:9999"     # where the relay listens for proxies
   secret_file = "relay.key"          # or secret = "..." (16 bytes or more)
   # max_line = 65536, max_pending = 64, auth_timeout = 10

Like L{sipedge.media._config}, no Twisted at import time; written in the
value grammar (the leaf C{sipedge._config_values}), never importing
L{sipedge.config} (which imports this module).
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import Any

import attrs

from sipedge._config_values import InvalidValue, integer, parse_table
from sipedge._config_values import describe as _describe
from sipedge._config_values import to_float as _to_float
from sipedge.error import ConfigError
from sipedge.media._control import MAX_LINE

__all__ = [
    "CONTROL_TRANSPORTS",
    "DEFAULT_CONTROL",
    "MIN_SECRET",
    "ControlAddress",
    "RelayServiceConfig",
    "parse_relay_config",
    "read_secret",
]

#: The fewest bytes a shared secret may have.
MIN_SECRET = 16

#: The control port unless told otherwise: loopback only.
DEFAULT_CONTROL = "tcp:127.0.0.1:9999"

#: The transports of the control port.
CONTROL_TRANSPORTS = ("tcp", "tls")


@attrs.frozen
class ControlAddress:
    """
    The control port's address, C{tcp:host:port} or C{tls:host:port}
    (C{tcp:[::1]:9999} for IPv6). The host is an IP address; port 0 (for
    tests) takes a free one.
    """

    transport: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: object) -> ControlAddress:
        """
        Parse C{transport:host:port}.

        @raise ValueError: with a message that quotes C{text}.
        """
        if isinstance(text, ControlAddress):
            return text
        example = "as in 'tcp:127.0.0.1:9999'"
        expected = "'tcp:host:port' or 'tls:host:port'"
        if not isinstance(text, str):
            raise ValueError(f"expected {expected} ({example}), got {_describe(text)}")
        transport, colon, rest = text.partition(":")
        transport = transport.lower()
        if not colon or transport not in CONTROL_TRANSPORTS:
            raise ValueError(f"expected {expected} ({example}), not {text!r}")
        if rest.startswith("["):
            host, bracket, port_text = rest[1:].partition("]")
            if not bracket or not port_text.startswith(":"):
                raise ValueError(f"expected '[IPv6]:port' after '{transport}:', in {text!r}")
            port_text = port_text[1:]
        else:
            host, colon, port_text = rest.rpartition(":")
            if not colon or ":" in host:
                raise ValueError(
                    f"expected 'host:port' ({example}; IPv6 in brackets), not {text!r}"
                )
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address, in {text!r}") from None
        if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"bad port {port_text!r} in {text!r}: must be 0 to 65535")
        return cls(transport, str(address), int(port_text))

    @property
    def is_loopback(self) -> bool:
        """Whether only this machine can reach it."""
        return ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"

    @property
    def secure(self) -> bool:
        """Whether the channel is TLS."""
        return self.transport == "tls"

    def client_endpoint(self, reactor: Any, timeout: float = 5.0, tls: Any = None) -> Any:
        """
        A stream client endpoint connecting here; for C{tls:}, wrapped in
        TLS with the client options C{tls} (C{optionsForClientTLS}).
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint

        kind = TCP6ClientEndpoint if ":" in self.host else TCP4ClientEndpoint
        endpoint = kind(reactor, self.host, self.port, timeout=timeout)
        if self.secure:
            if tls is None:
                raise ValueError(f"{self} needs TLS client options")
            return _TLSClientEndpoint(endpoint, tls, reactor)
        return endpoint


class _TLSClientEndpoint:
    """
    C{wrapClientTLS}, with TLS's small-write aggregation on C{clock} (the
    injected reactor) rather than the global one.
    """

    def __init__(self, endpoint: Any, options: Any, clock: Any) -> None:
        self._endpoint = endpoint
        self._options = options
        self._clock = clock

    def connect(self, factory: Any) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        wrapped = TLSMemoryBIOFactory(self._options, True, factory, clock=self._clock)
        return self._endpoint.connect(wrapped).addCallback(lambda p: p.wrappedProtocol)

    def __repr__(self) -> str:
        return f"<TLS over {self._endpoint!r}>"


def convert_address(key: str) -> Any:
    """A converter: text to a L{ControlAddress} (C{None} stays)."""

    def convert(value: object) -> object:
        if value is None or isinstance(value, ControlAddress):
            return value
        try:
            return ControlAddress.parse(value)
        except ValueError as e:
            raise InvalidValue(key, str(e)) from None

    return convert


def convert_control(value: object) -> Any:
    """A converter: C{relay.control}."""
    return convert_address("control")(value)


def convert_relay(value: object) -> Any:
    """A converter: C{media.relay}."""
    return convert_address("relay")(value)


def convert_path(value: object) -> object:
    """A converter: a non-empty string to a L{Path}."""
    if isinstance(value, str) and value:
        return Path(value).expanduser()
    return value


def check_secret(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """A validator: C{None} or a string of at least L{MIN_SECRET} bytes."""
    if value is None:
        return
    if not isinstance(value, str):
        raise InvalidValue(attribute.name, f"expected a string, got {_describe(value)}")
    if len(value.encode()) < MIN_SECRET:
        raise InvalidValue(
            attribute.name, f"must be at least {MIN_SECRET} bytes (e.g. `openssl rand -hex 32`)"
        )


def check_path(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """A validator: C{None} or a path."""
    if value is not None and not isinstance(value, Path):
        raise InvalidValue(attribute.name, f"expected a file name, got {_describe(value)}")


def check_seconds(instance: object, attribute: attrs.Attribute, value: object) -> None:
    """A validator: a positive, finite number of seconds."""
    if not isinstance(value, float) or not (math.isfinite(value) and value > 0):
        raise InvalidValue(
            attribute.name, f"expected a positive number of seconds, got {_describe(value)}"
        )


def read_pem(path: Path, key: str) -> bytes:
    """
    A PEM file's bytes.

    @raise ConfigError: naming C{key}, if it cannot be read or holds no PEM.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{key}: cannot read {path}: {e.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{key}: {path} holds no PEM data")
    return data


def client_tls_options(address: ControlAddress, ca: Path | None, key: str) -> Any:
    """
    TLS client options for C{address}: its certificate must name its IP
    address (subjectAltName) and chain to C{ca} (a PEM file; C{None} for
    the system's trust roots).

    @raise ConfigError: naming C{key} if C{ca} cannot be used.
    """
    from twisted.internet.ssl import Certificate, optionsForClientTLS, platformTrust

    if ca is None:
        trust: Any = platformTrust()
    else:
        try:
            trust = Certificate.loadPEM(read_pem(ca, key))
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(f"{key}: {ca} is not a PEM certificate: {e}") from None
    return optionsForClientTLS(address.host, trustRoot=trust)


def read_secret(secret: str | None, secret_file: Path | None, keys: tuple[str, str]) -> bytes:
    """
    The shared secret, from C{secret} or the file C{secret_file} (its
    text, surrounding white space removed).

    @param keys: the dotted names of the two keys, for errors.
    @raise ConfigError: naming the key, if neither or both are set, the
        file cannot be read, or the secret is too short.
    """
    secret_key, file_key = keys
    if secret is not None and secret_file is not None:
        raise ConfigError(f"{secret_key}: set {secret_key} or {file_key}, not both")
    if secret is not None:
        return secret.encode()
    if secret_file is None:
        raise ConfigError(
            f"{file_key}: the relay's control port needs a shared secret: "
            f"set {file_key} (or {secret_key})"
        )
    try:
        data = secret_file.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"{file_key}: cannot read {secret_file}: {e.strerror}") from None
    if len(data) < MIN_SECRET:
        raise ConfigError(
            f"{file_key}: {secret_file} holds {len(data)} bytes; a secret needs at least "
            f"{MIN_SECRET} (e.g. `openssl rand -hex 32 > {secret_file.name}`)"
        )
    return data


@attrs.frozen
class RelayServiceConfig:
    """
    The C{[relay]} section: C{twistd sipedge-relay}'s control port. The
    media itself (ports, addresses, limits, SRTP suites) is C{[media]}.

    @ivar control: where proxies connect (C{tcp:host:port}); loopback by
        default. Anything else also reaches the secret-guarded port from
        the network: use a private network or a firewall (the channel is
        not encrypted).
    @ivar secret: the shared secret, in the file itself...
    @ivar secret_file: ...or (better) in a file of its own.
    @ivar certificate: with a C{tls:} control port, the relay's certificate
        (PEM; it must name the control address's IP in subjectAltName)...
    @ivar private_key: ...and its key (PEM; C{None}: in C{certificate}).
    @ivar max_line: the longest control line accepted, in bytes.
    @ivar max_pending: requests one connection may have in flight.
    @ivar auth_timeout: seconds a client has to authenticate.
    """

    control: ControlAddress = attrs.field(
        factory=lambda: ControlAddress.parse(DEFAULT_CONTROL), converter=convert_control
    )
    secret: str | None = attrs.field(default=None, repr=False, validator=check_secret)
    secret_file: Path | None = attrs.field(
        default=None, converter=convert_path, validator=check_path
    )
    certificate: Path | None = attrs.field(
        default=None, converter=convert_path, validator=check_path
    )
    private_key: Path | None = attrs.field(
        default=None, converter=convert_path, validator=check_path
    )
    max_line: int = attrs.field(default=MAX_LINE, validator=integer(1024, 16 * 1024 * 1024))
    max_pending: int = attrs.field(default=64, validator=integer(1, 100_000))
    auth_timeout: float = attrs.field(default=10.0, converter=_to_float, validator=check_seconds)

    def __attrs_post_init__(self) -> None:
        if self.control.secure and self.certificate is None:
            raise InvalidValue(
                "certificate", f"the control port {self.control} is TLS: set relay.certificate"
            )

    def server_tls_options(self) -> Any:
        """
        The TLS server options of a C{tls:} control port: the
        C{intermediate} profile of L{sipedge.tls_profiles} (TLS 1.2 with
        ECDHE and AEAD ciphers only, or TLS 1.3).

        @raise ConfigError: naming C{relay.certificate} or
            C{relay.private_key} if they cannot be used.
        """
        from twisted.internet.ssl import CertificateOptions, PrivateCertificate

        from sipedge.tls_profiles import TLS_PROFILES

        assert self.certificate is not None
        certificate = read_pem(self.certificate, "relay.certificate")
        key_path, key_name = (
            (self.private_key, "relay.private_key")
            if self.private_key is not None
            else (self.certificate, "relay.certificate")
        )
        key = read_pem(key_path, key_name) if self.private_key is not None else certificate
        try:
            pair = PrivateCertificate.loadPEM(certificate + b"\n" + key)
        except Exception as e:
            raise ConfigError(
                f"{key_name}: cannot use {key_path} with {self.certificate}: {e}"
            ) from None
        return CertificateOptions(
            privateKey=pair.privateKey.original,
            certificate=pair.original,
            raiseMinimumTo=TLS_PROFILES["intermediate"].minimum,
            acceptableCiphers=TLS_PROFILES["intermediate"].acceptable_ciphers(),
        )

    def read_secret(self) -> bytes:
        """
        The secret (L{read_secret}).

        @raise ConfigError: naming C{relay.secret} or C{relay.secret_file}.
        """
        return read_secret(self.secret, self.secret_file, ("relay.secret", "relay.secret_file"))


def parse_relay_config(table: object, prefix: str = "relay") -> RelayServiceConfig:
    """
    A L{RelayServiceConfig} from a TOML table.

    @raise ConfigError: naming C{prefix.key} and the problem.
    """
    return parse_table(RelayServiceConfig, table, prefix, None)
