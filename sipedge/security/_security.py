# -*- test-case-name: sipedge.test.test_security -*-
"""
The security service: rate limiter, allow-list, bans and scanner list
together, on one clock, with one C{stats} dict, as stages and transports
use them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from sipedge import _debug
from sipedge.interfaces import IBanStore
from sipedge.message import DEFAULT_LIMITS, Limits, Request, Response
from sipedge.security._accounts import ACCOUNT_STAT_KEYS, AccountCheck, AccountGuard
from sipedge.security._accounts import DATABASE_NAME as ACCOUNTS_DATABASE
from sipedge.security._address import Network, TrustedNetworks
from sipedge.security._allow import AllowList
from sipedge.security._bans import DATABASE_NAME, Ban, Bans
from sipedge.security._bucket import (
    AUTHENTICATED,
    TRUSTED,
    UNAUTHENTICATED,
    RateLimiter,
)
from sipedge.security._config import SecurityConfig
from sipedge.security._kernel import KernelBans, run_nft
from sipedge.security._overload import LoadWatch
from sipedge.security._screen import SCREEN_STAT_KEYS, Screen
from sipedge.security._useragent import UserAgentMatcher
from sipedge.transaction import make_response

if TYPE_CHECKING:
    from sipedge.config import Config

__all__ = ["BAN_WATCH_INTERVAL", "RETRY_AFTER", "STAT_KEYS", "Security"]

#: Seconds between looks at whether another process changed the ban file
#: (C{sipedge ban}, another worker): one C{PRAGMA data_version} each.
BAN_WATCH_INTERVAL = 1.0

#: Seconds a TCP/TLS client whose request was shed is asked to wait.
RETRY_AFTER = "5"

#: Every counter in L{Security.stats}, each from 0.
STAT_KEYS = (
    "admission_refused",
    "ban_check_dropped",
    "scanner_dropped",
    "filter_rejected",
    "filter_dropped",
    "filter_method_refused",
    "flood_dropped",
    "limiter_evicted",
    "allow_noted",
    "allow_evicted",
    "bans_created",
    "bans_refused_trusted",
    "bans_expired",
    "bans_removed",
    "offences_flood",
    "offences_scanner",
    "offences_auth_failure",
    "offences_monitor",
    "offences_filter",
    *ACCOUNT_STAT_KEYS,
    *SCREEN_STAT_KEYS,
)


class Security:
    """
    Everything the flood, scanner and ban defences share.

    Give L{admit} to the L{sipedge.transport.TransportManager} (C{admission=})
    so that banned sources are dropped before parsing, L{screen}
    (C{screen=}) so that the global budget of unauthenticated work is
    applied before parsing, and this object to
    the stages as C{StageServices.security}. L{start} runs the periodic
    purge; L{stop} stops it; L{close} closes the ban database.

    @ivar config: the L{SecurityConfig}.
    @ivar clock: the C{IReactorTime} everything runs on.
    @ivar stats: the counters (L{STAT_KEYS}), a plain dict for the metrics
        to export.
    @ivar trusted: the L{TrustedNetworks}.
    @ivar limiter: the L{RateLimiter} of the flood stage.
    @ivar allow: the L{AllowList} of authenticated sources.
    @ivar bans: the ban list, an L{IBanStore} (L{Bans} unless one is given).
    @ivar scanners: the L{UserAgentMatcher} of the scanner stage.
    @ivar accounts: the L{AccountGuard}: failures per account, and where
        each account authenticated from (in C{accounts.sqlite3}, shared by
        the workers).
    @ivar screener: the L{Screen} of L{screen}.
    @ivar kernel: the L{KernelBans} (C{kernel_bans = true}), or C{None}.
    @ivar watch: the L{LoadWatch} of the screen (C{overload_lag}), or C{None}.
    """

    _log = Logger()

    def __init__(
        self,
        config: SecurityConfig | None = None,
        *,
        clock: IReactorTime,
        state_dir: str | os.PathLike[str] | None = None,
        trusted: Iterable[Network | str] = (),
        bans: IBanStore | None = None,
        limits: Limits = DEFAULT_LIMITS,
        nft: Callable[[str], None] | None = None,
    ) -> None:
        """
        @param config: the C{[security]} section; the defaults if C{None}.
        @param clock: for every time-dependent decision and the purge timer.
        @param state_dir: the directory of C{bans.sqlite3} and
            C{accounts.sqlite3} (shared by the worker processes), which
            must exist; C{None} keeps bans and account failures in memory
            only.
        @param trusted: the trusted networks (C{sip.trusted}): the largest
            budget, and never banned.
        @param bans: a ban list to use instead of the L{Bans} made from
            C{config} and C{state_dir} (one shared by several instances, or
            kept elsewhere); it keeps its own counters and trust, and is
            closed with this service.
        @param limits: the parser's limits (the screen parses a datagram
            it takes for a scanner's, to be sure).
        @param nft: runs an nftables script for L{kernel} (by default
            C{nft -f -}).
        @raise sipedge.error.ConfigError: if the ban database cannot be used.
        """
        config = config if config is not None else SecurityConfig()
        self.config = config
        self.clock = clock
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.trusted = TrustedNetworks(trusted)
        self.limiter = RateLimiter(
            config.budgets,
            max_keys=config.max_rate_keys,
            report_interval=config.flood_offence_interval,
            stats=self.stats,
        )
        self.allow = AllowList(max_sources=config.max_authenticated_sources, stats=self.stats)
        if bans is not None:
            self.bans: IBanStore = bans
        else:
            self.bans = self._own_bans(config, state_dir)
        self.scanners = UserAgentMatcher(
            config.scanner_user_agents, config.scanner_user_agent_patterns
        )
        self.accounts = AccountGuard(
            ":memory:" if state_dir is None else os.path.join(state_dir, ACCOUNTS_DATABASE),
            failures=config.account_failures,
            window=config.account_window,
            memory=config.account_memory,
            known_sources=config.account_known_sources,
            max_accounts=config.max_account_keys,
            stats=self.stats,
        )
        self.watch = (
            LoadWatch(clock, threshold=config.overload_lag) if config.overload_lag else None
        )
        self.screener = Screen(
            self,
            config.global_budget,
            limits=limits,
            report_interval=config.flood_offence_interval,
            watch=self.watch,
        )
        self.kernel: KernelBans | None = None
        if config.kernel_bans:
            self.kernel = KernelBans(clock, self.bans.list, run=nft or run_nft)
        self._purger: LoopingCall | None = None
        self._ban_watch: LoopingCall | None = None
        #: Told of each source that authenticated here and of each ban made
        #: here (the workers of one service tell each other at once:
        #: L{sipedge.worker_service}); C{None}: nobody is.
        self.on_authenticated: Callable[[str, str, float], None] | None = None
        self.on_ban: Callable[[Ban], None] | None = None

    def _own_bans(self, config: SecurityConfig, state_dir: str | os.PathLike[str] | None) -> Bans:
        """The L{Bans} of C{config}, in C{state_dir} (or in memory)."""
        path = ":memory:" if state_dir is None else os.path.join(state_dir, DATABASE_NAME)
        return Bans(
            path,
            base=config.ban_base,
            maximum=config.ban_max,
            memory=config.ban_memory,
            window=config.offence_window,
            thresholds=config.thresholds,
            trusted=self.trusted,
            max_tracked=config.max_offence_keys,
            stats=self.stats,
            now=self.clock.seconds(),
        )

    @classmethod
    def from_config(cls, config: Config, clock: IReactorTime) -> Security:
        """
        The security service of a whole L{sipedge.config.Config}: its
        C{security} section, its state
        directory (which must exist) and C{sip.trusted}.
        """
        return cls(
            config.security,
            clock=clock,
            state_dir=config.state.path,
            trusted=config.sip.trusted,
            limits=config.limits.message_limits,
        )

    # -- the hot path ---------------------------------------------------------

    def admit(self, host: str) -> bool:
        """
        The transports' admission hook: C{False} (drop, unparsed) for a
        banned source. Refusals are counted, and logged (at debug level)
        only when hot-path debugging is on: a banned flood is many packets.
        """
        bans = self.bans
        if not bans:
            return True  # no ban at all: the common case costs no clock read
        if bans.is_banned(host, self.clock.seconds()):
            self.stats["admission_refused"] += 1
            if _debug.enabled():  # per packet: never by default (a flood)
                self._log.debug("Dropping packet from banned {source}", source=host, rule="ban")
            return False
        return True

    def screen(self, data: bytes, host: str) -> bool:
        """
        The transports' pre-parse hook for UDP: C{False} (drop, unparsed)
        for a scanner's request and for unauthenticated work over the
        global budget; see L{Screen}.
        """
        return self.screener.screen(data, host)

    def screen_stream(self, request: Request, host: str) -> tuple[Response, ...] | None:
        """
        The stream transports' hook for each request parsed from a TCP or
        TLS connection, before its transaction: C{None} (on to the chain),
        C{()} (a scanner's: dropped unanswered), or the answer to send
        instead (unauthenticated work over the global budget: 503 with
        C{Retry-After}, see L{Screen.screen_request}).
        """
        verdict = self.screener.screen_request(request, host)
        if verdict == "pass":
            return None
        if verdict == "drop":
            return ()
        return (make_response(request, 503, "Service Unavailable", [("Retry-After", RETRY_AFTER)]),)

    def is_banned(self, host: str) -> bool:
        """True if C{host} is banned now."""
        return self.bans.is_banned(host, self.clock.seconds())

    def tier_of(self, host: str, now: float) -> str:
        """The rate budget C{host} gets at C{now}: trusted, authenticated or not."""
        if host in self.trusted:
            return TRUSTED
        if self.allow.is_authenticated(host, now):
            return AUTHENTICATED
        return UNAUTHENTICATED

    # -- reports from the rest of the proxy ---------------------------------

    def note_authenticated(self, source_ip: str, user: str, expires_at: float) -> None:
        """C{user} authenticated from C{source_ip} until C{expires_at} (see L{AllowList})."""
        self.allow.note_authenticated(source_ip, user, expires_at)
        if self.on_authenticated is not None:
            self.on_authenticated(source_ip, user, expires_at)

    def is_authenticated(self, source_ip: str) -> bool:
        """True if some user is authenticated from C{source_ip} now."""
        return self.allow.is_authenticated(source_ip, self.clock.seconds())

    def may_check_password(self, user: str, source: str) -> AccountCheck | None:
        """
        Whether the credentials of C{user} from C{source} may be checked
        now (see L{AccountGuard.begin_check}): C{None} if the account is
        over its failure budget and C{source} is neither trusted nor one it
        authenticated from before. Else the check, counted in advance: hand
        it back to L{password_failed} or L{password_right}.
        """
        return self.accounts.begin_check(
            user, source, self.clock.seconds(), trusted=source in self.trusted
        )

    def password_failed(self, user: str, source: str, check: AccountCheck | None = None) -> None:
        """The credentials of C{user} from C{source} were checked (C{check}), and wrong."""
        self.accounts.note_failure(user, source, self.clock.seconds(), check)

    def password_right(self, check: AccountCheck) -> None:
        """The credentials of C{check} were right: not a failure (see L{AccountGuard.end_check})."""
        self.accounts.end_check(check)

    def password_ok(self, user: str, source: str) -> None:
        """C{user} authenticated from C{source}: a known source of the account."""
        self.accounts.note_success(user, source, self.clock.seconds())

    def offence(self, source: str, kind: str, detail: str | None = None) -> Ban | None:
        """
        Count an offence of C{kind} (C{"flood"}, C{"scanner"},
        C{"auth-failure"}, C{"monitor"}, C{"filter"}) by C{source} now; see
        L{Bans.offence}.
        """
        ban = self.bans.offence(source, kind, self.clock.seconds(), detail)
        if ban is not None:
            self._banned(ban)
        return ban

    def ban(
        self, source: str, reason: str, duration: float | None = None, *, rule: str = "ban"
    ) -> Ban | None:
        """
        Ban C{source} now (see L{Bans.ban}; C{rule} names who, in the log);
        with kernel bans, the nftables set has it within the batching delay.
        """
        ban = self.bans.ban(source, reason, self.clock.seconds(), duration=duration, rule=rule)
        if ban is not None:
            self._banned(ban)
        return ban

    def _banned(self, ban: Ban) -> None:
        """A ban was made here: the kernel's set and L{on_ban} hear of it."""
        if self.kernel is not None:
            self.kernel.changed()
        if self.on_ban is not None:
            self.on_ban(ban)

    def unban(self, source: str) -> bool:
        """Lift the ban of C{source} (see L{Bans.unban}), in the kernel's set too."""
        lifted = self.bans.unban(source)
        if lifted and self.kernel is not None:
            self.kernel.changed()
        return lifted

    # -- upkeep -------------------------------------------------------------

    def purge(self) -> None:
        """Sweep expired bans, idle buckets and expired allow-list entries."""
        now = self.clock.seconds()
        self.bans.purge(now)
        self.limiter.purge(now)
        self.allow.purge(now)
        self.accounts.purge(now)
        if self.kernel is not None:
            self.kernel.sync()  # bans made or lifted by another process (sipedge ban)

    def start(self, ports: Iterable[int] = ()) -> None:
        """
        Run L{purge} every C{purge_interval} seconds until L{stop}; with
        kernel bans, create the nftables table for our SIP C{ports}.
        """
        if self._purger is not None:
            return
        if self.watch is not None:
            self.watch.start()
        if self.kernel is not None:
            if self.kernel.start(ports):
                self._log.info(
                    "Kernel bans: nftables table inet {table} drops banned sources to ports"
                    " {ports}", table=self.kernel.table, ports=sorted(set(ports)),
                )
        purger = LoopingCall(self._purge_logged)
        purger.clock = self.clock
        self._purger = purger
        purger.start(self.config.purge_interval, now=False)
        if isinstance(self.bans, Bans) and self.bans.path != ":memory:":  # others write it
            watch = LoopingCall(self._watch_bans)
            watch.clock = self.clock
            self._ban_watch = watch
            watch.start(BAN_WATCH_INTERVAL, now=False)

    def _watch_bans(self) -> None:
        """
        A ban made or lifted by another process (C{sipedge ban}, another
        worker) is in force here within L{BAN_WATCH_INTERVAL}, not at the
        next purge: the file's C{data_version} says when to read it again.
        """
        bans = self.bans
        assert isinstance(bans, Bans)
        try:
            changed = bans._reload_if_changed(self.clock.seconds())
        except sqlite3.Error as e:
            self._log.error("Cannot read the ban database {path} again: {error}",
                            path=bans.path, error=e)
            return
        if changed and self.kernel is not None:
            self.kernel.sync()

    def restart_purge(self) -> None:
        """Run the periodic purge at the (new) C{purge_interval}, if it runs."""
        purger = self._purger
        if purger is not None and purger.running:
            purger.stop()
            purger.start(self.config.purge_interval, now=False)

    def _purge_logged(self) -> None:
        try:
            self.purge()
        except Exception:
            # A full disk must not stop the sweeping for good.
            self._log.failure("Security purge failed")

    def stop(self) -> None:
        """Stop the periodic purge (idempotent)."""
        for call in (self._purger, self._ban_watch):
            if call is not None and call.running:
                call.stop()
        self._purger = self._ban_watch = None
        if self.watch is not None:
            self.watch.stop()
        if self.kernel is not None:
            self.kernel.stop()

    def close(self) -> None:
        """Stop, and close the ban and account databases."""
        self.stop()
        self.bans.close()
        self.accounts.close()
