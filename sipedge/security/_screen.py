# -*- test-case-name: sipedge.test.test_screen -*-
"""
The screen: cheap decisions on a raw UDP datagram before it is parsed, so
that a flood of junk from many sources is shed before it costs a parse, a
transaction, a challenge and a place in the chain ahead of the calls.

The transports call L{Screen.screen} with each datagram whose source the
ban check admitted. From a L{sipedge.transport.glance} at the bytes:

 1. a source in C{sip.trusted}, or one a user authenticated from, goes on
    unread (the chain's stages, C{scanner} and C{flood}, judge it);
 2. a response goes on (it is matched to a transaction or dropped there);
 3. a request whose User-Agent names a scanner is dropped and counts a
    C{scanner} offence, as the C{scanner} stage would (the glance is
    confirmed by the full parser first: this is one datagram per scanner,
    which is banned by it);
 4. an ACK, and a request that claims a dialog (To tag and Route), go on:
    they end transactions and calls that exist;
 5. a source already over its own budget goes on to the C{flood} stage,
    which drops it and counts the offence that bans it;
 6. everything else (new requests, and datagrams the glance cannot read,
    from sources nobody authenticated from) takes a token from one bucket
    shared by all such sources, C{unauthenticated_global_rate} a second;
    with none left it is dropped without an answer. While the event loop
    is overloaded (L{LoadWatch}) and such requests arrive at L{SURGE} a
    second or more, all of them are dropped.

So under a flood from many sources, each within its own budget, the
unauthenticated work the proxy does is bounded, and the calls of users and
trunks do not queue behind it.

Over TCP and TLS a message cannot be read without framing it, so the
stream transports call L{Screen.screen_request} with each request once it
is parsed, before its transaction, the chain and a challenge: the same
decisions, from the parsed fields, and the same global budget. A shed
request there is answered (503 with Retry-After, by
L{sipedge.security.Security.screen_stream}): a connection's peer cannot be
spoofed, so the answer amplifies nothing, and a phone over TCP would not
retransmit a request nobody answered.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from sipedge.error import MessageParseError
from sipedge.message import DEFAULT_LIMITS, Limits, Request, parse_datagram
from sipedge.security._bucket import UNAUTHENTICATED, Budget, SharedBucket, method_class
from sipedge.security._overload import LoadWatch
from sipedge.transport import glance

__all__ = ["SCREEN_STAT_KEYS", "Screen"]


def _claims_dialog(request: Request) -> bool:
    """A To tag and a Route: the parsed form of the glance's C{in_dialog}."""
    if "Route" not in request.headers:
        return False
    try:
        return request.to_address.tag is not None
    except MessageParseError:
        return False  # the full path answers it as malformed

#: The counters the screen adds to C{Security.stats}.
SCREEN_STAT_KEYS = ("flood_shed", "flood_shed_overload", "screen_scanner_dropped")

#: Unauthenticated requests a second from which an overloaded loop sheds
#: them all (below it, what is overloading the proxy is not them).
SURGE = 100

#: The most of a User-Agent put in a log event or a ban's reason.
_SHOWN = 120

#: User-Agent values whose verdict is remembered (then forgotten at once).
_USER_AGENTS_KEPT = 4096


class Screen:
    """
    The pre-parse decisions of L{sipedge.security.Security}.

    @ivar bucket: the shared L{SharedBucket} of unauthenticated work, or
        C{None} when the global budget is off.
    @ivar limits: the parser's limits, for confirming a scanner.
    """

    _log = Logger()

    def __init__(
        self,
        security: Any,
        budget: Budget | None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        report_interval: float = 1.0,
        watch: LoadWatch | None = None,
    ) -> None:
        """
        @param security: the L{sipedge.security.Security} whose clock,
            trusted networks, allow-list, limiter, scanner list and counters
            are used.
        @param budget: the global budget of unauthenticated work; C{None}
            for none.
        @param report_interval: the shedding is logged at most this often.
        @param watch: a L{LoadWatch}: while it says the loop is
            overloaded, and unauthenticated requests arrive at L{SURGE} a
            second or more, they are all shed; C{None} for the budget alone.
        """
        self._security = security
        self.bucket = None if budget is None else SharedBucket(budget, security.clock.seconds())
        self.limits = limits
        self._report_interval = report_interval
        self._reported: float | None = None
        self._unreported = 0
        # User-Agent -> whether it is a scanner's: a flood repeats one.
        self._user_agents: dict[str, bool] = {}
        self.watch = watch
        self._second = security.clock.seconds()
        self._arrivals = self._last_arrivals = 0

    def screen(self, data: bytes, host: str) -> bool:
        """
        C{True} if the datagram C{data} from C{host} goes on to the full
        parse; C{False} if it is dropped here (unanswered).
        """
        security = self._security
        now = security.clock.seconds()
        if host in security.trusted or security.allow.is_authenticated(host, now):
            return True  # not even a glance: the chain's own stages judge them
        seen = glance(data)
        if seen is not None:
            method = seen.method
            if method is None:
                return True
            user_agent = seen.user_agent
            if user_agent is not None and self._is_scanners(user_agent):
                request = self._parsed(data)
                if request is not None and self._scanner(request, host):
                    return False
            if method == "ACK" or seen.in_dialog:
                return True
            if self._over_own_budget(host, method, now):
                return True  # the flood stage drops it, and counts the offence
        return self._take(host, now)

    def screen_request(self, request: Request, host: str) -> str:
        """
        The screen for a request already framed and parsed (TCP, TLS): the
        same decisions as L{screen}, made on the parsed fields. C{"pass"}
        (on to the chain), C{"drop"} (a scanner's: no answer) or
        C{"shed"} (unauthenticated work over the global budget, or an
        overloaded loop: the caller answers it cheaply, or not at all).
        """
        security = self._security
        now = security.clock.seconds()
        if host in security.trusted or security.allow.is_authenticated(host, now):
            return "pass"
        user_agent = request.headers.get("User-Agent")
        if user_agent is not None and self._is_scanners(user_agent.strip()):
            if self._scanner(request, host):
                return "drop"
        method = request.method
        if method == "ACK" or _claims_dialog(request):
            return "pass"
        if self._over_own_budget(host, method, now):
            return "pass"
        return "pass" if self._take(host, now) else "shed"

    def _is_scanners(self, user_agent: str) -> bool:
        """Whether C{user_agent} matches the scanner list (remembered: a flood repeats one)."""
        scanner = self._user_agents.get(user_agent)
        if scanner is None:
            if len(self._user_agents) >= _USER_AGENTS_KEPT:
                self._user_agents.clear()
            scanner = self._security.scanners.match(user_agent) is not None
            self._user_agents[user_agent] = scanner
        return scanner

    def _over_own_budget(self, host: str, method: str, now: float) -> bool:
        limiter = self._security.limiter
        return bool(limiter.tokens(host, method_class(method), UNAUTHENTICATED, now) < 1)

    def _take(self, host: str, now: float) -> bool:
        """
        Count one unauthenticated arrival and take a token of the global
        budget: C{False} (shed, counted, logged now and then) if there is
        none or the loop is overloaded under a surge.
        """
        security = self._security
        # Unauthenticated arrivals a second (the last whole second and this one).
        if now - self._second >= 1.0:
            self._last_arrivals = self._arrivals if now - self._second < 2.0 else 0
            self._arrivals = 0
            self._second = now
        self._arrivals += 1
        watch = self.watch
        if (
            watch is not None
            and watch.overloaded(now)
            and max(self._arrivals, self._last_arrivals) >= SURGE
        ):
            security.stats["flood_shed_overload"] += 1
        else:
            bucket = self.bucket
            if bucket is None or bucket.take(now):
                return True
        security.stats["flood_shed"] += 1
        self._unreported += 1
        reported = self._reported
        if reported is None or now - reported >= self._report_interval:
            self._report(now, host, watch is not None and watch.overloaded(now))
        return False

    def _report(self, now: float, host: str, overloaded: bool) -> None:
        budget = self.bucket.budget if self.bucket is not None else None
        self._log.warn(
            "Shedding unauthenticated requests: {why}; {count} dropped unparsed since the"
            " last report, the last from {source}",
            why="the event loop is overloaded" if overloaded else (
                f"over the global budget of {budget.rate:g}/s (burst {budget.burst:g})"
                if budget else "over the global budget"
            ),
            rate=budget.rate if budget else None,
            burst=budget.burst if budget else None,
            overloaded=overloaded,
            count=self._unreported,
            source=host,
            rule="flood-global",
        )
        self._reported = now
        self._unreported = 0

    def _parsed(self, data: bytes) -> Request | None:
        """C{data} parsed as a request, or C{None} (the full path answers it as malformed)."""
        try:
            request = parse_datagram(data, self.limits)
        except MessageParseError:
            return None
        return request if isinstance(request, Request) else None

    def _scanner(self, request: Request, host: str) -> bool:
        """
        Confirm on the parsed C{request} that it is a scanner's; if so count
        it, log it and count the offence.
        """
        security = self._security
        user_agent = request.headers.get("User-Agent")
        if user_agent is None:
            return False
        matched = security.scanners.match(user_agent)
        if matched is None:
            return False
        security.stats["screen_scanner_dropped"] += 1
        security.stats["scanner_dropped"] += 1
        shown = user_agent[:_SHOWN]
        self._log.info(
            "Dropping {method} from scanner {source}: User-Agent {user_agent!r}",
            method=request.method,
            source=host,
            user_agent=shown,
            matched=matched,
            rule="scanner",
        )
        security.offence(host, "scanner", f"User-Agent {shown!r}")
        return True
