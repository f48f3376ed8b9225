# -*- test-case-name: sipedge.test.test_monitor -*-
"""
The behaviour monitor: the IDS/IPS that watches what the proxy decides
and acts on sources whose behaviour turns abnormal.

L{Monitor} is an L{IProxyObserver}: the proxy core tells it of every
chain decision. The C{monitor} stage also shows it the final responses the
proxy relays upstream (L{Monitor.response_relayed}), so that what the
servers behind us answer counts too: a 404 from a PBX, a 401/407/403 to
credentials a downstream registrar checked. It counts, per source address and per user, over a
sliding window on the injected clock (L{MonitorConfig}):

================================  ======  =============================================
rule                              scope   metric
================================  ======  =============================================
C{auth-failure-ratio}             both    failed / (failed + ok) digest outcomes
C{not-found-ratio}                source  404 answers / requests
C{distinct-not-found-users}       source  different Request-URI users answered 404
C{request-rate}                   source  requests in the window
C{premium-calls}                  both    INVITEs to a premium prefix in the window
C{concurrent-calls}               user    calls at once
C{call-rate}                      user    INVITEs in the window
================================  ======  =============================================

A 404 counts whether the chain answered it or a server behind us did. A
digest outcome is the C{digest-auth} stage's; for a request it did not
judge, the relayed final response to credentials that the request carried
on (Authorization or Proxy-Authorization) is one: a 2xx is C{ok}, a 401,
407 or 403 is C{failed}; a 401/407 to a request without credentials is a
challenge, not an outcome. Finals the proxy core made up itself (a 408
or 503 for a branch without an answer, a 404 for a next hop DNS does not
know: they carry C{Warning: 399 sipedge}) say nothing of the far side and
are not counted; nor are the chain's own answers, which the monitor counted
as decisions and which never reach the response chain.

A C{refused} outcome of the C{digest-auth} stage (credentials for an
account past its failure budget, from a source it never authenticated
from, not checked: L{sipedge.security.AccountGuard}) counts as failed.

Ratios are judged once they rest on C{min_samples} outcomes. Users are the
authenticated identity, or for the authentication metric the user name the
credentials gave (so a password guessed at from many addresses shows too).

A rule triggers at most once per window for each source or user however
many requests keep it over its threshold, and does what its action says
(L{MONITOR_ACTIONS}): C{log}; C{rate-limit}, which puts the source (the
one that sent the request that crossed the threshold) on a reduced budget
for C{restrict_duration}, enforced by the C{monitor} stage; or C{ban},
which counts a C{monitor} offence of the source with the security service
(at C{monitor_threshold}, 1 by default, that bans it). Every trigger is a
warning log event with C{rule="monitor"}, C{metric}, C{scope}, C{source},
C{user}, C{value}, C{threshold} and C{action}, and bumps the counters
C{monitor_triggered}, C{monitor_<metric>} and C{monitor_<action>}.

Sources in trusted networks are not watched at all: nothing is ever done
against them.

Memory is bounded: at most C{max_sources} sources and C{max_users} users
(the least recently seen evicted first), entries idle for a window are
forgotten, and the window is a ring of C{slots} counters. No timer is
held: expiry runs against the clock as decisions arrive.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.interfaces import IProxyObserver
from sipedge.message import parse_auth_header
from sipedge.results import Forward, Respond
from sipedge.security._bucket import TIERS, UNAUTHENTICATED, Budget, RateLimiter, Verdict
from sipedge.security._bucket import method_class as _method_class
from sipedge.security._config import MONITOR_ACTIONS, MONITOR_RULES, MonitorConfig
from sipedge.security._monitor_record import (
    _AUTH_FAILED,
    _AUTH_OK,
    _CALLS,
    _NOT_FOUND,
    _PREMIUM,
    _REQUESTS,
    _Check,
    _Record,
)
from sipedge.security._tollfraud import (
    ENDED_BY_BYE,
    ENDED_BY_CANCEL,
    ENDED_EVICTED,
    Call,
    CallTracker,
    call_id_of,
    dialled_number,
    is_initial_invite,
    match_prefix,
)

if TYPE_CHECKING:
    from sipedge.config import Config

__all__ = ["MONITOR_STAT_KEYS", "Monitor"]


def _stat(name: str) -> str:
    return "monitor_" + name.replace("-", "_")


#: Every counter L{Monitor} keeps, each from 0.
MONITOR_STAT_KEYS = (
    "monitor_triggered",
    *(_stat(rule) for rule in MONITOR_RULES),
    *(_stat(action) for action in MONITOR_ACTIONS if action != "off"),
    "monitor_restricted_dropped",
    "monitor_sources_evicted",
    "monitor_users_evicted",
    "monitor_calls_evicted",
)

_ADMIT = Verdict.ADMIT

#: Where the response side marks a request whose final it has counted.
_COUNTED = "monitor-response"
#: The Warning the proxy core puts on a final it makes up for a branch
#: (C{ProxyCore._branch_failed}): no server behind us said it.
_LOCAL_WARNING = "399 sipedge "
_CREDENTIALS = ("Authorization", "Proxy-Authorization")
_AUTH_FAILED_STATUSES = frozenset((401, 403, 407))
# The digest-auth stage's outcomes: "refused" (an account past its failure
# budget, not checked) counts as failed.
_AUTH_RESULTS = frozenset(("ok", "failed", "refused"))


def _credentials_user(request: Any) -> str | bool:
    """
    The user name of the first credentials in C{request}; C{""} if they
    name none; C{False} if it has no credentials.
    """
    for name in _CREDENTIALS:
        for value in request.headers.get_all(name):
            try:
                user = parse_auth_header(value).param("username")
            except MessageParseError:
                return ""
            return user or ""
    return False


def _made_locally(response: Any) -> bool:
    """Whether the proxy core made C{response} up (it carries our 399 Warning)."""
    return any(v.startswith(_LOCAL_WARNING) for v in response.headers.get_all("Warning"))


@implementer(IProxyObserver)
class Monitor:
    """
    The behaviour monitor: watches decisions (L{request_decided}), keeps
    the sources it restricted, and tells the C{monitor} stage whether a
    request of a restricted source is within its reduced budget
    (L{admit}).

    @ivar config: the L{MonitorConfig}.
    @ivar clock: the C{IReactorTime} it reads.
    @ivar security: the L{sipedge.security.Security} that C{ban} actions
        report offences to, or C{None} (then C{ban} only logs).
    @ivar stats: the counters (L{MONITOR_STAT_KEYS}); C{security.stats}
        by default, so they are exported with the rest.
    @ivar calls: the L{CallTracker} of the C{concurrent-calls} rule.
    @ivar limiter: the L{RateLimiter} of restricted sources.
    """

    _log = Logger()

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        clock: IReactorTime,
        security: Any = None,
        is_trusted: Callable[[str], bool] | None = None,
        stats: MutableMapping[str, int] | None = None,
    ) -> None:
        """
        @param is_trusted: tells whether a source address is in a trusted
            network; by default C{security.trusted} (none without
            C{security}). The C{is_trusted} of the decision's services is
            asked too.
        """
        self.config = config = config if config is not None else MonitorConfig()
        self.clock = clock
        self.security = security
        if is_trusted is None:
            trusted = getattr(security, "trusted", None)
            is_trusted = trusted.__contains__ if trusted is not None else (lambda host: False)
        self._is_trusted = is_trusted
        if stats is None:
            stats = security.stats if security is not None else {}
        self.stats = stats
        for key in MONITOR_STAT_KEYS:
            stats.setdefault(key, 0)
        self._rules = {
            rule: (threshold, action)
            for rule, (threshold, action) in config.rules.items()
            if action != "off"
        }
        self._step = config.window / config.slots
        self._sources: OrderedDict[str, _Record] = OrderedDict()
        self._users: OrderedDict[str, _Record] = OrderedDict()
        self._restricted: OrderedDict[str, float] = OrderedDict()
        budget = Budget(config.restricted_rate, config.restricted_burst)
        self.limiter = RateLimiter(
            dict.fromkeys(TIERS, budget), max_keys=config.max_sources, stats={}
        )
        self.calls = CallTracker(
            max_duration=config.max_call_duration,
            # Only once the monitor stage shows us ACKs (watch_dialogs).
            setup_timeout=0.0,
            max_calls=config.max_calls,
            on_end=self._call_ended,
        )
        self._purged = clock.seconds()

    @classmethod
    def from_config(cls, config: Config, clock: IReactorTime, security: Any = None) -> Monitor:
        """
        The monitor of a whole L{sipedge.config.Config}: its
        C{[security.monitor]}; C{sip.trusted} is never acted on.
        """
        from sipedge.security._address import TrustedNetworks

        section = config.security.monitor
        if security is not None:
            return cls(section, clock=clock, security=security)
        trusted = TrustedNetworks(config.sip.trusted)
        return cls(section, clock=clock, is_trusted=trusted.__contains__)

    # -- what the stage asks --------------------------------------------------

    def watch_dialogs(self) -> None:
        """
        The C{monitor} stage shows us every ACK, BYE and CANCEL
        (L{note_dialog_request}) from now on: a call that no ACK confirms
        is counted for C{call_setup_timeout} only.
        """
        self.calls.setup_timeout = self.config.call_setup_timeout

    def note_dialog_request(self, request: Any) -> None:
        """An ACK confirms the call of its Call-ID; a BYE or CANCEL ends it."""
        method = request.method
        if method not in ("ACK", "BYE", "CANCEL"):
            return
        call_id = call_id_of(request)
        if call_id is None:
            return
        if method == "ACK":
            self.calls.confirm(call_id)
        else:
            self.calls.release(call_id, ENDED_BY_BYE if method == "BYE" else ENDED_BY_CANCEL)

    def is_restricted(self, source: str) -> bool:
        """True if C{source} is on the reduced budget now."""
        return self._restriction(source, self.clock.seconds()) is not None

    def restricted(self) -> dict[str, float]:
        """The restricted sources now, and when each restriction ends."""
        now = self.clock.seconds()
        return {source: until for source, until in self._restricted.items() if until > now}

    def admit(self, source: str, method: str) -> Verdict:
        """
        Whether a C{method} request of C{source} may pass: always for a
        source that is not restricted; within the reduced budget (per
        method class) for one that is.
        """
        if not self._restricted:
            return _ADMIT
        now = self.clock.seconds()
        if self._restriction(source, now) is None:
            return _ADMIT
        verdict = self.limiter.take(source, _method_class(method), UNAUTHENTICATED, now)
        if verdict is not _ADMIT:
            self.stats["monitor_restricted_dropped"] += 1
        return verdict

    def _restriction(self, source: str, now: float) -> float | None:
        until = self._restricted.get(source)
        if until is None:
            return None
        if until > now:
            return until
        del self._restricted[source]
        self._log.info(
            "Restriction of {source} ended", source=source, rule="monitor", action="rate-limit"
        )
        return None

    def restrict(self, source: str, duration: float | None = None) -> float:
        """
        Put C{source} on the reduced budget for C{duration} seconds
        (C{restrict_duration} by default), or longer if it already is;
        return when it ends. The C{rate-limit} action.
        """
        now = self.clock.seconds()
        until = now + (self.config.restrict_duration if duration is None else duration)
        restricted = self._restricted
        previous = restricted.pop(source, None)
        if previous is not None:
            until = max(until, previous)
        elif len(restricted) >= self.config.max_sources:
            restricted.popitem(last=False)
        restricted[source] = until
        return until

    # -- IProxyObserver -----------------------------------------------------

    def request_decided(self, context: Any, result: Any) -> None:
        """Count what C{context}'s request did and what it got; act on thresholds."""
        request = context.request
        if request.method == "BYE":
            # Whoever hangs up (a trusted trunk too) ends the call.
            call_id = call_id_of(request)
            if call_id is not None:
                self.calls.release(call_id, ENDED_BY_BYE)
        source = context.flow.remote_host
        if self._trusted(source, context):
            return
        now = self.clock.seconds()
        self._upkeep(now)
        slot = int(now // self._step)
        rules = self._rules
        src = self._record(self._sources, source, slot, now, "monitor_sources_evicted")
        requests = src.add(_REQUESTS)
        check = _Check(self, context, source, now)
        if "request-rate" in rules:
            check.count(src, "request-rate", "source", None, requests)

        auth = context.annotations.get("digest-auth")
        if isinstance(auth, Mapping) and auth.get("result") in _AUTH_RESULTS:
            quantity = _AUTH_OK if auth["result"] == "ok" else _AUTH_FAILED
            name = auth.get("user")
            self._auth_outcome(
                src, quantity, name if isinstance(name, str) else None, slot, now, check
            )

        if isinstance(result, Respond) and result.status == 404:
            src.add(_NOT_FOUND)
            self._note_not_found(src, request, slot, check)
        if "not-found-ratio" in rules and requests >= self.config.min_samples:
            check.count(src, "not-found-ratio", "source", None, src.total(_NOT_FOUND) / requests)

        if is_initial_invite(request):
            self._invite(context, result, src, slot, now, check)

    def response_relayed(self, context: Any, response: Any) -> None:
        """
        Count the final response the proxy relays upstream for C{context}'s
        request against the request's source (the C{monitor} stage calls
        this from its response side): a 404 as a not-found answer, and an
        answer to credentials no stage of ours judged as a digest outcome.
        Once per request; provisional responses, the proxy's own finals and
        responses without a context (stray 2xx) are not counted.
        """
        status = response.status
        if status < 200 or context is None:
            return
        annotations = context.annotations
        if _COUNTED in annotations:
            return  # another 2xx of a forked INVITE
        annotations[_COUNTED] = True
        not_found = status == 404
        if not (not_found or status < 300 or status in _AUTH_FAILED_STATUSES):
            return
        source = context.flow.remote_host
        if self._trusted(source, context) or _made_locally(response):
            return
        credentials: str | bool = False
        if not not_found:
            auth = annotations.get("digest-auth")
            if not (isinstance(auth, Mapping) and auth.get("result") in _AUTH_RESULTS):
                credentials = _credentials_user(context.request)
            if credentials is False:
                return  # no credentials: a challenge, or an answer to no one in particular
        now = self.clock.seconds()
        self._upkeep(now)
        slot = int(now // self._step)
        src = self._record(self._sources, source, slot, now, "monitor_sources_evicted")
        check = _Check(self, context, source, now)
        if not_found:
            src.add(_NOT_FOUND)
            self._note_not_found(src, context.original, slot, check)
            requests = src.total(_REQUESTS)
            if "not-found-ratio" in self._rules and requests >= self.config.min_samples:
                check.count(
                    src, "not-found-ratio", "source", None, src.total(_NOT_FOUND) / requests
                )
            return
        quantity = _AUTH_FAILED if status >= 300 else _AUTH_OK
        self._auth_outcome(src, quantity, str(credentials) or None, slot, now, check)

    def _auth_outcome(
        self,
        src: _Record,
        quantity: int,
        name: str | None,
        slot: int,
        now: float,
        check: _Check,
    ) -> None:
        """Count one digest outcome of the source, and of user C{name}."""
        src.add(quantity)
        check.ratio(src, "auth-failure-ratio", "source", name)
        if name:
            record = self._record(self._users, name, slot, now, "monitor_users_evicted")
            record.add(quantity)
            check.ratio(record, "auth-failure-ratio", "user", name)

    def _invite(
        self, context: Any, result: Any, src: _Record, slot: int, now: float, check: _Check
    ) -> None:
        rules = self._rules
        user = context.identity
        record = None
        if user is not None:
            record = self._record(self._users, user, slot, now, "monitor_users_evicted")
            attempts = record.add(_CALLS)
            if "call-rate" in rules:
                check.count(record, "call-rate", "user", user, attempts)
        prefixes = self.config.premium_prefixes
        if prefixes and "premium-calls" in rules:
            try:
                number = dialled_number(context.request.request_uri)
            except MessageParseError:
                number = ""
            if match_prefix(number, prefixes) is not None:
                check.count(src, "premium-calls", "source", user, src.add(_PREMIUM))
                if record is not None:
                    check.count(record, "premium-calls", "user", user, record.add(_PREMIUM))
        if user is not None and isinstance(result, Forward):
            call_id = call_id_of(context.request)
            if call_id is not None:
                calls = self.calls
                calls.expire(now)
                calls.start(call_id, user, context.flow.remote_host, now)
                if record is not None and "concurrent-calls" in rules:
                    check.count(record, "concurrent-calls", "user", user, calls.active(user))

    def _note_not_found(self, src: _Record, request: Any, slot: int, check: _Check) -> None:
        rule = self._rules.get("distinct-not-found-users")
        if rule is None:
            return
        try:
            uri = request.request_uri
        except MessageParseError:
            return
        tried = dialled_number(uri) or str(uri)
        users = src.not_found_users
        if users is None:
            users = src.not_found_users = OrderedDict()
        oldest = slot - self.config.slots
        while users and next(iter(users.values())) <= oldest:
            users.popitem(last=False)
        users.pop(tried, None)
        # Counting past the threshold tells nothing more: keep at most that many.
        if len(users) >= rule[0]:
            users.popitem(last=False)
        users[tried] = slot
        check.count(src, "distinct-not-found-users", "source", None, len(users))

    def _trusted(self, source: str, context: Any) -> bool:
        if self._is_trusted(source):
            return True
        is_trusted = getattr(context.services, "is_trusted", None)
        return bool(is_trusted(source)) if is_trusted is not None else False

    def _record(
        self,
        records: OrderedDict[str, _Record],
        key: str,
        slot: int,
        now: float,
        evicted: str,
    ) -> _Record:
        record = records.get(key)
        if record is None:
            limit = self.config.max_users if records is self._users else self.config.max_sources
            if len(records) >= limit:
                records.popitem(last=False)
                self.stats[evicted] += 1
            record = records[key] = _Record(self.config.slots, slot, now)
            return record
        records.move_to_end(key)
        record.seen = now
        record.advance(slot)
        return record

    # -- acting ---------------------------------------------------------------

    def _trigger(
        self,
        record: _Record,
        rule: str,
        scope: str,
        context: Any,
        source: str,
        user: str | None,
        value: float,
        now: float,
    ) -> None:
        threshold, action = self._rules[rule]
        last = record.fired.get(rule)
        if last is not None and now - last < self.config.window:
            return  # once per window
        record.fired[rule] = now
        stats = self.stats
        stats["monitor_triggered"] += 1
        stats[_stat(rule)] += 1
        stats[_stat(action)] += 1
        shown = round(value, 3) if isinstance(value, float) else value
        self._log.warn(
            "Monitor: {metric} of {scope} {key} is {value} (threshold {threshold});"
            " {action} {source}",
            rule="monitor",
            metric=rule,
            scope=scope,
            key=source if scope == "source" else user,
            source=source,
            user=user,
            value=shown,
            threshold=threshold,
            action=action,
            method=context.request.method,
        )
        if action == "rate-limit":
            self.restrict(source)
        elif action == "ban":
            security = self.security
            if security is None:
                self._log.warn(
                    "Monitor cannot ban {source}: no security service",
                    source=source,
                    rule="monitor",
                )
            else:
                detail = f"{rule} of {scope} {user if scope == 'user' else source} is {shown}"
                security.offence(source, "monitor", detail)

    # -- upkeep -------------------------------------------------------------

    def _upkeep(self, now: float) -> None:
        """Every slot or so: forget idle records and ended restrictions."""
        if now - self._purged >= self._step:
            self.purge(now)

    def purge(self, now: float | None = None) -> None:
        """Forget records idle for a window, ended restrictions and calls."""
        if now is None:
            now = self.clock.seconds()
        self._purged = now
        idle = now - self.config.window
        for records in (self._sources, self._users):
            stale = []
            for key, record in records.items():  # least recently seen first
                if record.seen > idle:
                    break
                stale.append(key)
            for key in stale:
                del records[key]
        ended = [source for source, until in self._restricted.items() if until <= now]
        for source in ended:
            self._restriction(source, now)
        self.limiter.purge(now)
        self.calls.expire(now)

    def sizes(self) -> dict[str, int]:
        """How many sources, users, restrictions and calls are kept."""
        return {
            "sources": len(self._sources),
            "users": len(self._users),
            "restricted": len(self._restricted),
            "calls": len(self.calls),
        }

    def _call_ended(self, call: Call, reason: str) -> None:
        if reason == ENDED_EVICTED:
            self.stats["monitor_calls_evicted"] += 1
