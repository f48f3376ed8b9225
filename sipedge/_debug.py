# -*- test-case-name: sipedge.test.test_transaction_tracing -*-
"""
One switch for the debug events written on hot paths (per packet, per
request, per transaction transition).

twistd's log observer writes every level, so a debug event emitted per
packet costs CPU and disk even when nobody wants it, and lets a flood (even
a banned one) decide how fast the log grows. Code on a hot path emits its
debug events only when this switch is on; the service turns it on for
C{[log] level = "debug"}. Standard library only: every layer may use it.
"""

from __future__ import annotations

__all__ = ["enabled", "set_enabled"]


class _Switch:
    on = False


_switch = _Switch()


def enabled() -> bool:
    """True if hot-path debug events should be emitted."""
    return _switch.on


def set_enabled(on: bool) -> None:
    """Turn hot-path debug events on or off (process-wide)."""
    _switch.on = on
