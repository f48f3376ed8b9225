# -*- test-case-name: sipedge.test.test_media_anchor_config -*-
"""
The C{[media]} section of the configuration: media anchoring (the
C{media-anchor} stage) and the in-process relay it drives.

   [media]
   anchor = true                      # default false: the stage passes everything
   ports = "30000-30999"              # the relay's UDP port range
   address = "127.0.0.1"              # the relay's address (both sides)
   # internal_address = "10.0.0.1"    # per side, on an edge with two networks
   # external_address = "203.0.113.1"
   # address6 = "2001:db8::1"         # IPv6 parties (default ::1 on loopback)
   internal = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", ...]
   srtp = "auto"                      # or "passthrough", "terminate", "rekey"
   sdes_over_plain = false            # SDES keys only over TLS signalling

L{MediaConfig} is written in the value grammar of L{sipedge.config} and
checks its values when constructed: its validators raise
L{sipedge.config.InvalidValue} with the key relative to the section, so
the loader names C{media.<key>}. L{parse_media_config} does the whole job
on its own (unknown keys included), for stage options and tests.

No Twisted at import time (L{MediaConfig.build_relay} imports the relay
when called); the grammar comes from the leaf C{sipedge._config_values},
never L{sipedge.config} (which imports this module).
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from sipedge._config_values import (
    InvalidValue,
    non_negative_integer,
    parse_table,
)
from sipedge._config_values import boolean as _boolean
from sipedge._config_values import describe as _describe
from sipedge._config_values import each as _each
from sipedge._config_values import network as _network
from sipedge._config_values import to_float as _to_float
from sipedge.media._config_addresses import (
    _canonical,
    _check_address,
    _check_advertise,
    _check_ports,
    _convert_ports,
)
from sipedge.media._config_interfaces import (
    check_ipv6_keys,
    interface_for,
    interfaces,
    sided,
)
from sipedge.media._control_config import (
    ControlAddress,
    check_path,
    check_seconds,
    check_secret,
    client_tls_options,
    convert_path,
    convert_relay,
    read_secret,
)
from sipedge.media._nat import nat_source
from sipedge.media._srtp import CRYPTO_SUITES, SUPPORTED_SUITES, CryptoSuite
from sipedge.media._srtp_auto import auto_modes, offer_kind
from sipedge.media._values import LegPolicy, MediaLimits, MediaMode, RelayPolicy
from sipedge.message import NatVerdict

if TYPE_CHECKING:
    from sipedge.media._relay import MediaRelay
    from sipedge.media._remote import RemoteMediaRelay

__all__ = [
    "DEFAULT_INTERNAL_NETWORKS",
    "SIDES",
    "SRTP_POLICIES",
    "MediaConfig",
    "parse_media_config",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: The private, loopback and link-local networks: the default of
#: C{media.internal} and C{topology_hiding.internal}.
DEFAULT_INTERNAL_NETWORKS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
)

#: The values of C{media.srtp}.
SRTP_POLICIES = ("auto", "passthrough", "terminate", "rekey")

#: The two sides of the edge.
SIDES = ("internal", "external")

#: C{media.internal} by default: private, loopback and link-local networks.

#: The values of C{media.nat}.
NAT_POLICIES = ("auto", "off", "external", "all")


def _choice(*choices: str) -> Callable[..., None]:
    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if not isinstance(value, str) or value not in choices:
            names = ", ".join(repr(c) for c in choices)
            raise InvalidValue(attribute.name, f"must be one of {names}, not {_describe(value)}")

    return check


def _non_negative(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, float):
        raise InvalidValue(attribute.name, f"expected a number, got {_describe(value)}")
    if not (math.isfinite(value) and value >= 0):
        raise InvalidValue(attribute.name, f"must be 0 (off) or a positive number, not {value!r}")


_count = non_negative_integer("off")


def _convert_internal(value: object) -> tuple[IPNetwork, ...]:
    return _each("internal", _network, value)


def _suite(value: object) -> CryptoSuite:
    if not isinstance(value, str):
        raise ValueError(f"expected a crypto suite name, got {_describe(value)}")
    for suite in CRYPTO_SUITES:
        if suite.name == value:
            if suite not in SUPPORTED_SUITES:
                raise ValueError(f"{value} is not supported by the installed libsrtp")
            return suite
    names = ", ".join(s.name for s in SUPPORTED_SUITES)
    raise ValueError(f"unknown crypto suite {value!r}; expected one of: {names}")


def _convert_suites(value: object) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)) and not value:
        raise InvalidValue("suites", "must name at least one crypto suite")
    suites = _each("suites", _suite, value)
    names: list[str] = []
    for index, suite in enumerate(suites):
        if suite.name in names:
            raise InvalidValue(
                f"suites[{index}]", f"{suite.name} is already suites[{names.index(suite.name)}]"
            )
        names.append(suite.name)
    return tuple(names)


def _n(default: float) -> Any:
    return attrs.field(default=default, converter=_to_float, validator=_non_negative)


def _unspecified(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


@attrs.frozen
class MediaConfig:
    """
    C{[media]}: media anchoring and the relay.

    @ivar anchor: whether the C{media-anchor} stage anchors calls; C{False}
        makes it pass every message unchanged.
    @ivar ports: the relay's UDP port range, C{(low, high)} inclusive
        (written C{"low-high"}); each side's address uses the whole range.
    @ivar address: the relay's address for both sides: bound, and written
        in SDP. A wildcard (C{0.0.0.0}, C{::}) needs C{advertise}.
    @ivar advertise: the address written in SDP for C{address}, when it is
        not the one bound (a wildcard, or a 1:1 NAT); C{None} for
        C{address}.
    @ivar internal_address: the relay's address facing internal parties,
        or C{None} for C{address}.
    @ivar internal_advertise: likewise, the address written in SDP.
    @ivar external_address: the relay's address facing external parties,
        or C{None} for C{address}.
    @ivar external_advertise: likewise.
    @ivar address6: the relay's IPv6 address for parties whose media is
        IPv6, when C{address} is IPv4 (dual stack,
        L{sipedge.media._config_interfaces}); C{None}: C{::1} on a relay
        on the IPv4 loopback, else none.
    @ivar advertise6: likewise, the address written in SDP.
    @ivar internal_address6: per side, as C{internal_address}.
    @ivar internal_advertise6:
    @ivar external_address6:
    @ivar external_advertise6:
    @ivar internal: the networks whose parties are internal; every other
        address is external.
    @ivar default_side: the side of a callee the stage cannot place (a
        host name that no route, registration or address tells).
    @ivar srtp: C{"auto"} (the default): per call, from what each leg's
        signalling may carry and what the offer asks
        (L{sipedge.media._srtp_auto}): pass-through, terminate or re-key;
        C{"passthrough"}: the relay leaves SRTP alone, and a=crypto
        lines pass between the parties unchanged; C{"terminate"}: SRTP with
        external parties (an external offer without SDES keys is refused),
        RTP with internal ones (unless an internal party offers SRTP);
        C{"rekey"}: SRTP with every party, with the relay's own keys on each
        leg.
    @ivar sdes_over_plain: whether SDES keys may be offered to or taken
        from a party whose signalling is not TLS; C{False} refuses such an
        offer with 488, and a branch whose flow is not TLS when keys would
        go over it (the stage's L{IBranchStage} side).
    @ivar suites: the SRTP crypto suites the relay accepts and offers, in
        order of preference (SDES names).
    @ivar nat: C{"auto"} (the default): a party the proxy detects behind
        NAT (L{sipedge.message.detect_nat}) whose SDP names a private
        address or its public one (L{sipedge.media.nat_source}) has its
        media taken from that
        public address, the port learned from its first packets
        (L{nat_source}); C{"off"}: only the SDP's exact addresses;
        C{"external"}, C{"all"}: C{auto}, and those parties' legs also
        learn the port from the SDP's IP (L{LegPolicy.nat}).

    Per-call limits (L{MediaLimits}; 0 turns one off):

    @ivar idle_timeout: seconds without media after the answer that end
        the media session.
    @ivar setup_timeout: seconds from the offer to the answer.
    @ivar max_duration: seconds a call's media may last.
    @ivar max_packet_rate: packets a second (all streams, both ways).
    @ivar packet_burst:
    @ivar max_bandwidth: bytes a second.
    @ivar bandwidth_burst:
    @ivar max_packet_size: longer datagrams are dropped.
    @ivar nat_learn_packets: packets a latching leg may learn from.
    @ivar nat_learn_seconds: seconds after the answer it may learn in.
    """

    anchor: bool = attrs.field(default=False, validator=_boolean)
    ports: tuple[int, int] = attrs.field(
        default=(30000, 30999), converter=_convert_ports, validator=_check_ports
    )
    address: str = attrs.field(default="127.0.0.1", converter=_canonical, validator=_check_address)
    advertise: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_advertise
    )
    internal_address: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_address
    )
    internal_advertise: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_advertise
    )
    external_address: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_address
    )
    external_advertise: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_advertise
    )
    address6: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_address
    )
    advertise6: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_advertise
    )
    internal_address6: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_address
    )
    internal_advertise6: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_advertise
    )
    external_address6: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_address
    )
    external_advertise6: str | None = attrs.field(
        default=None, converter=_canonical, validator=_check_advertise
    )
    internal: tuple[IPNetwork, ...] = attrs.field(
        default=DEFAULT_INTERNAL_NETWORKS, converter=_convert_internal
    )
    default_side: str = attrs.field(default="external", validator=_choice(*SIDES))
    srtp: str = attrs.field(default="auto", validator=_choice(*SRTP_POLICIES))
    sdes_over_plain: bool = attrs.field(default=False, validator=_boolean)
    suites: tuple[str, ...] = attrs.field(
        factory=lambda: tuple(s.name for s in SUPPORTED_SUITES), converter=_convert_suites
    )
    nat: str = attrs.field(default="auto", validator=_choice(*NAT_POLICIES))
    idle_timeout: float = _n(60.0)
    setup_timeout: float = _n(300.0)
    max_duration: float = _n(4 * 3600.0)
    max_packet_rate: float = _n(2000.0)
    packet_burst: float = _n(1000.0)
    max_bandwidth: float = _n(2_500_000.0)
    bandwidth_burst: float = _n(1_000_000.0)
    max_packet_size: int = attrs.field(default=1500, validator=_count)
    nat_learn_packets: int = attrs.field(default=10, validator=_count)
    nat_learn_seconds: float = _n(10.0)
    relay: ControlAddress | None = attrs.field(default=None, converter=convert_relay)
    relay_secret: str | None = attrs.field(default=None, repr=False, validator=check_secret)
    relay_secret_file: Path | None = attrs.field(
        default=None, converter=convert_path, validator=check_path
    )
    relay_timeout: float = attrs.field(default=2.0, converter=_to_float, validator=check_seconds)
    relay_ca: Path | None = attrs.field(default=None, converter=convert_path, validator=check_path)

    def __attrs_post_init__(self) -> None:
        both = self.internal_address is not None and self.external_address is not None
        for side in ("", "internal_", "external_"):
            if not side and both:
                continue  # `address` is not used
            bound = getattr(self, side + "address")
            advertised = getattr(self, side + "advertise")
            if bound is None:
                if advertised is not None and side:
                    # advertising a side that binds `address`: fine
                    bound = self.address
                else:
                    continue
            shown = advertised if advertised is not None else bound
            if _unspecified(shown):
                raise InvalidValue(
                    side + "address",
                    f"{bound!r} is a wildcard: set {side}advertise to the address to write in SDP",
                )
            if ipaddress.ip_address(bound).version != ipaddress.ip_address(shown).version:
                raise InvalidValue(
                    side + "advertise",
                    f"{shown} and the bound {bound} are not of the same IP version",
                )
        check_ipv6_keys(self)
        try:
            self.limits  # noqa: B018 -- checks the combination
        except ValueError as e:
            text = str(e)
            key = text.split(" ", 1)[0]
            raise InvalidValue(key if key in attrs.fields_dict(MediaConfig) else "", text) from None

    # -- derived values -------------------------------------------------------

    @property
    def limits(self) -> MediaLimits:
        """The per-call limits."""
        return MediaLimits(
            max_packet_rate=self.max_packet_rate,
            packet_burst=self.packet_burst,
            max_bandwidth=self.max_bandwidth,
            bandwidth_burst=self.bandwidth_burst,
            max_packet_size=self.max_packet_size,
            idle_timeout=self.idle_timeout,
            setup_timeout=self.setup_timeout,
            max_duration=self.max_duration,
            nat_learn_packets=self.nat_learn_packets,
            nat_learn_seconds=self.nat_learn_seconds,
        )

    @property
    def crypto_suites(self) -> tuple[CryptoSuite, ...]:
        """L{suites} as L{CryptoSuite}s."""
        return tuple(_suite(name) for name in self.suites)

    def primary_side(self, side: str) -> tuple[str, str]:
        """(bound, advertised) of C{side}'s primary interface."""
        bound = getattr(self, side + "_address")
        advertised = getattr(self, side + "_advertise")
        if bound is None:
            bound = self.address
            if advertised is None:
                advertised = self.advertise
        return bound, advertised if advertised is not None else bound

    @property
    def interfaces(self) -> dict[str, tuple[str, str]]:
        """
        The relay's interfaces: name -> (address bound, address advertised).
        C{"default"}, or C{"internal"} and C{"external"}, from the
        C{address} keys; their IPv6 twins (C{"default6"}, ...) from the
        C{address6} keys (L{sipedge.media._config_interfaces}).
        """
        return interfaces(self)

    def interface_for(self, external: bool, family: int | None = None) -> str:
        """
        The relay interface that faces a party on that side whose media
        is IPv4 or IPv6 (C{family} 4 or 6; C{None}: the primary one).
        """
        return interface_for(self.interfaces, external, family)

    @property
    def sided(self) -> bool:
        """Whether which side a party is on changes anything."""
        return (
            sided(self.interfaces)
            or self.srtp in ("terminate", "auto")
            or self.nat == "external"
        )

    def is_external(self, host: str) -> bool:
        """
        Whether a party at C{host} (an IP address) is external: not in
        L{internal}. Something that is not an IP address is on
        L{default_side}.
        """
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return self.default_side == "external"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return not any(address in network for network in self.internal)

    def leg_modes(
        self,
        offerer_external: bool,
        answerer_external: bool,
        offer_srtp: bool,
        *,
        offer_keys: bool | None = None,
        offerer_secure: bool = False,
        answerer_secure: bool = False,
    ) -> tuple[MediaMode, MediaMode] | None:
        """
        The modes of the offerer's leg (relay side A) and the answerer's
        (side B), by L{srtp}:

         - C{auto}: by L{auto_modes}, from the offer's kind (C{offer_srtp},
           C{offer_keys}: a=crypto on a relayed stream, by default as
           C{offer_srtp}), whether each leg's signalling may carry SDES
           keys (C{offerer_secure}, C{answerer_secure}: TLS; always with
           L{sdes_over_plain}) and whether both parties are on the same
           side; C{None} when the offer cannot be carried (SRTP required,
           and its keys came over signalling that may not carry them);
         - C{passthrough}: both L{MediaMode.PASSTHROUGH};
         - C{rekey}: both L{MediaMode.SRTP_REKEY};
         - C{terminate}: SRTP on a leg whose party is external, and on the
           offerer's leg if its offer is SRTP; terminate/plain for one SRTP
           leg, rekey for two, plain for none.
        """
        if self.srtp == "auto":
            kind = offer_kind(offer_srtp, offer_srtp if offer_keys is None else offer_keys)
            plain_ok = self.sdes_over_plain
            return auto_modes(
                kind,
                offerer_secure or plain_ok,
                answerer_secure or plain_ok,
                offerer_external == answerer_external,
            )
        if self.srtp == "passthrough":
            return MediaMode.PASSTHROUGH, MediaMode.PASSTHROUGH
        if self.srtp == "rekey":
            return MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY
        a = offerer_external or offer_srtp
        b = answerer_external
        if a and b:
            return MediaMode.SRTP_REKEY, MediaMode.SRTP_REKEY
        if a:
            return MediaMode.SRTP_TERMINATE, MediaMode.PLAIN
        if b:
            return MediaMode.PLAIN, MediaMode.SRTP_TERMINATE
        return MediaMode.PLAIN, MediaMode.PLAIN

    def nat_source(self, verdict: NatVerdict | None, sdp_host: str | None) -> str | None:
        """
        The address to give the relay as a party's signalling source
        (L{sipedge.media.MediaOffer.source}), from the proxy's NAT
        detection C{verdict} of the message that carried its SDP (whose
        connection address is C{sdp_host}): by L{sipedge.media.nat_source},
        unless C{nat} is C{"off"}; else C{None} (strict).
        """
        if self.nat == "off":
            return None
        return nat_source(verdict, sdp_host)

    def leg_policy(
        self, mode: MediaMode, external: bool, family: int | None = None
    ) -> LegPolicy:
        """
        The policy of a leg in C{mode} facing a party on that side whose
        media is of C{family} (4, 6, or C{None}).
        """
        nat = self.nat == "all" or (self.nat == "external" and external)
        return LegPolicy(mode, self.interface_for(external, family), nat)

    def policy(
        self,
        offerer_external: bool,
        answerer_external: bool,
        offer_srtp: bool,
        offerer_family: int | None = None,
        answerer_family: int | None = None,
        **facts: Any,
    ) -> RelayPolicy | None:
        """
        The L{RelayPolicy} of a session (limits: the relay's); each leg on
        the interface of its party's side and IP family (C{None}: the
        primary one); C{facts} as L{leg_modes} takes them; C{None} if the
        offer cannot be carried.
        """
        modes = self.leg_modes(offerer_external, answerer_external, offer_srtp, **facts)
        if modes is None:
            return None
        a_mode, b_mode = modes
        return RelayPolicy(
            self.leg_policy(a_mode, offerer_external, offerer_family),
            self.leg_policy(b_mode, answerer_external, answerer_family),
        )

    def build_relay(
        self, reactor: Any, *, random: Callable[[int], bytes] = os.urandom
    ) -> MediaRelay:
        """
        A L{MediaRelay} on C{reactor} (C{IReactorUDP} and C{IReactorTime})
        with one L{PortAllocator} per interface, this section's limits and
        suites. Nothing is bound until a call needs it.
        """
        from sipedge.media._ports import PortAllocator
        from sipedge.media._relay import MediaRelay

        low, high = self.ports
        allocators = {
            name: PortAllocator(
                reactor, low, high, "" if _unspecified(bound) else bound, advertised=advertised
            )
            for name, (bound, advertised) in self.interfaces.items()
        }
        return MediaRelay(
            reactor, allocators, limits=self.limits, suites=self.crypto_suites, random=random
        )


    def relay_secret_bytes(self) -> bytes:
        """
        The remote relay's shared secret.

        @raise ConfigError: naming C{media.relay_secret_file} (or
            C{media.relay_secret}) if it is missing, unreadable or short.
        """
        return read_secret(
            self.relay_secret, self.relay_secret_file,
            ("media.relay_secret", "media.relay_secret_file"),
        )

    def build_remote_relay(
        self, reactor: Any, *, random: Callable[[int], bytes] = os.urandom
    ) -> RemoteMediaRelay:
        """
        A L{RemoteMediaRelay} to C{twistd sipedge-relay} at L{relay}, not
        started (the service starts it). The relay applies its own
        C{[media]} ports, addresses, limits and suites; only the policy of
        each session (modes, sides, NAT) comes from here.

        @raise ConfigError: if L{relay} is not set or the secret cannot
            be read.
        """
        from sipedge.error import ConfigError
        from sipedge.media._remote import RemoteMediaRelay

        if self.relay is None:
            raise ConfigError("media.relay: not set")
        tls = (
            client_tls_options(self.relay, self.relay_ca, "media.relay_ca")
            if self.relay.secure
            else None
        )
        return RemoteMediaRelay(
            self.relay.client_endpoint(reactor, tls=tls),
            self.relay_secret_bytes(),
            reactor,
            timeout=self.relay_timeout,
            description=str(self.relay),
            random=random,
        )


def parse_media_config(
    table: object, prefix: str = "media", base: MediaConfig | None = None
) -> MediaConfig:
    """
    A L{MediaConfig} from a TOML table: the keys given replace those of
    C{base} (the defaults if C{None}).

    @param prefix: the dotted key of C{table}, to name in errors
        (C{"media"}, or C{"pipeline.options.media-anchor"}).
    @raise ConfigError: naming C{prefix.key} and the problem.
    """
    return parse_table(MediaConfig, table, prefix, base)
