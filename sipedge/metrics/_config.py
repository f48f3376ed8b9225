# -*- test-case-name: sipedge.test.test_metrics -*-
"""
C{[metrics]}: where Prometheus scrapes sipedge, as a frozen section in the
style of L{sipedge.config} (errors name C{metrics.<key>}). This module must
not import L{sipedge.config}.
"""

from __future__ import annotations

import attrs

from sipedge._config_values import InvalidValue, parse_endpoint

__all__ = ["MetricsConfig", "MetricsListen", "TcpListen"]


@attrs.frozen
class MetricsListen:
    """C{tcp:host:port}: the host an IP address (IPv6 in brackets), port 0 to 65535."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: object) -> MetricsListen:
        """@raise ValueError: naming what is wrong with C{text}."""
        _, host, port = parse_endpoint(text, ("tcp",), "tcp:127.0.0.1:9100", min_port=0)
        return cls(host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


#: The same grammar under its general name (the admin API uses it too).
TcpListen = MetricsListen


def _listen(value: object) -> MetricsListen | None:
    if value is None or isinstance(value, MetricsListen):
        return value
    try:
        return MetricsListen.parse(value)
    except ValueError as e:
        raise InvalidValue("listen", str(e)) from None


@attrs.frozen
class MetricsConfig:
    """
    C{[metrics]}.

    @ivar listen: where C{/metrics} is served, or C{None} (the default)
        for no metrics endpoint.
    """

    listen: MetricsListen | None = attrs.field(default=None, converter=_listen)
