# -*- test-case-name: sipedge.test.test_toll_fraud -*-
"""
Toll fraud: limits on the calls our users place outside our domains.

A stolen password is worth money when it places calls to premium or
international numbers, many at once, for hours. L{TollFraudGuard} checks
each new call (an INVITE without a To tag) that the C{responsibility}
stage marked C{"relay"} and that comes from an authenticated user
(C{context.identity}):

 - the dialled prefix (the Request-URI user or C{tel} number): a deny list,
   and an allow list that, when set, allows nothing else (deny wins);
 - the user's concurrent calls, tracked by Call-ID (L{CallTracker});
 - the user's new calls in any 60 seconds.

A refused call gets 403 "Call Not Allowed" and a log event whose C{rule}
names the check (L{TOLL_FRAUD_RULES}). Sources in C{sip.trusted} (trunks, PBXes) bypass
the per-user limits; the prefix lists apply to them too unless
C{trusted_prefix_checks} is off, and also to their unauthenticated calls.

A call holds its slot from the INVITE until a BYE with its Call-ID passes
the chain, or the INVITE's final failure response (4xx-6xx: busy,
declined, a 487 after a CANCEL, a 408 when nobody answered) is relayed
upstream (the C{toll-fraud} stage's response side tells
L{TollFraudGuard.response_relayed}; the 487 the proxy core answers to a
CANCEL while the chain is still deciding passes the response chain too),
and at most C{max_call_duration}; a call that fails unseen (without the
C{toll-fraud} stage in the chain) keeps its slot for C{call_setup_timeout}
unless an ACK confirms it. The slot is counted when the INVITE passes the stage; as an
L{IProxyObserver}, the guard gives it back at once when the chain does not
forward that INVITE after all (a later stage answered it).

Nothing here holds a timer: expiry is checked against the clock whenever
the guard is used, so nothing leaks and nothing needs stopping.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sipedge.error import MessageParseError
from sipedge.interfaces import IDialogListener, IProxyObserver
from sipedge.message import SipURI, TelURI
from sipedge.results import Forward
from sipedge.security._config import TollFraudConfig

if TYPE_CHECKING:
    from sipedge.config import Config

__all__ = [
    "TOLL_FRAUD_RULES",
    "TOLL_FRAUD_STAT_KEYS",
    "Call",
    "CallTracker",
    "Refusal",
    "TollFraudGuard",
    "dialled_number",
    "match_prefix",
]

#: The checks of the toll-fraud stage, as the C{rule} of their log events.
TOLL_FRAUD_RULES = (
    "toll-fraud-deny",
    "toll-fraud-allow",
    "toll-fraud-concurrent",
    "toll-fraud-rate",
)

#: Every counter L{TollFraudGuard} keeps, each from 0.
TOLL_FRAUD_STAT_KEYS = (
    "toll_fraud_refused",
    "toll_fraud_deny",
    "toll_fraud_allow",
    "toll_fraud_concurrent",
    "toll_fraud_rate",
    "toll_fraud_calls_started",
    "toll_fraud_calls_ended",
    "toll_fraud_calls_expired",
    "toll_fraud_calls_evicted",
)

#: Why a tracked call ended.
ENDED_BY_BYE = "bye"
ENDED_BY_CANCEL = "cancel"
ENDED_NOT_FORWARDED = "not-forwarded"
ENDED_FAILED = "failed"
ENDED_SETUP_TIMEOUT = "setup-timeout"
ENDED_MAX_DURATION = "max-duration"
ENDED_EVICTED = "evicted"
ENDED_DIALOG = "dialog-ended"

_SEPARATORS = str.maketrans("", "", "-.() \t")
_MINUTE = 60.0


def dialled_number(uri: object) -> str:
    """
    What a caller dialled: the number of a C{tel} URI, or the user part of
    a SIP URI (unescaped, its own parameters cut off), without the visual
    separators C{-.()} and blanks; C{""} if there is none.
    """
    if isinstance(uri, TelURI):
        return uri.digits
    if isinstance(uri, SipURI):
        user = uri.unescaped_user
        if not user:
            return ""
        return user.split(";", 1)[0].translate(_SEPARATORS)
    return ""


def match_prefix(number: str, prefixes: Iterable[str]) -> str | None:
    """The longest of C{prefixes} that C{number} starts with, or C{None}."""
    best: str | None = None
    if not number:
        return None
    for prefix in prefixes:
        if number.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return best


def is_initial_invite(request: Any) -> bool:
    """True for an INVITE that starts a dialog (no To tag, RFC 3261 12.1)."""
    if request.method != "INVITE":
        return False
    try:
        return request.to_address.tag is None
    except MessageParseError:
        return False


def call_id_of(request: Any) -> str | None:
    """The Call-ID of C{request}, or C{None} if it has no usable one."""
    try:
        return str(request.call_id)
    except MessageParseError:
        return None


@attrs.define
class Call:
    """
    One call a L{CallTracker} counts.

    @ivar call_id: its Call-ID.
    @ivar user: whose call it is (the authenticated AOR).
    @ivar source: the address the INVITE came from.
    @ivar started: when the INVITE was seen.
    @ivar deadline: when its slot is released if nothing ends it first.
    @ivar confirmed: True once an ACK has been seen.
    """

    call_id: str
    user: str
    source: str
    started: float
    deadline: float
    confirmed: bool = False


class CallTracker:
    """
    Calls in progress, by Call-ID and user, with the number each user has.

    A call lasts until L{release} (a BYE or CANCEL) or its deadline:
    C{setup_timeout} after it started until L{confirm} (an ACK), then
    C{max_duration} after it started. L{expire} releases calls past their
    deadline (a heap, so each call costs O(log n)); the owner calls it with
    the time now before counting. Memory is bounded: at most C{max_calls},
    the oldest forgotten first.

    @ivar on_end: called with each L{Call} that ends, and why (C{bye},
        C{cancel}, C{not-forwarded}, C{failed}, C{setup-timeout},
        C{max-duration}, C{evicted}).
    """

    def __init__(
        self,
        *,
        max_duration: float,
        setup_timeout: float = 0.0,
        max_calls: int = 100_000,
        on_end: Callable[[Call, str], None] | None = None,
    ) -> None:
        """
        @param max_duration: the longest a call is counted, seconds.
        @param setup_timeout: how long a call no ACK confirms is counted;
            0 (or not less than C{max_duration}): C{max_duration}.
        @param max_calls: the most calls kept.
        """
        if not max_duration > 0:
            raise ValueError(f"max_duration must be positive, not {max_duration!r}")
        if max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, not {max_calls}")
        self.max_duration = max_duration
        self.setup_timeout = setup_timeout
        self.max_calls = max_calls
        self.on_end = on_end
        self._calls: OrderedDict[tuple[str, str], Call] = OrderedDict()
        self._users_of: dict[str, list[str]] = {}
        self._per_user: dict[str, int] = {}
        self._deadlines: list[tuple[float, int, str, str]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._calls)

    def active(self, user: str) -> int:
        """How many calls C{user} has (as of the last L{expire})."""
        return self._per_user.get(user, 0)

    def get(self, call_id: str, user: str) -> Call | None:
        """The call C{call_id} of C{user}, if it is counted."""
        return self._calls.get((call_id, user))

    def calls(self) -> list[Call]:
        """Every call counted, oldest first."""
        return list(self._calls.values())

    def start(self, call_id: str, user: str, source: str, now: float) -> Call | None:
        """
        Count a new call; C{None} (and nothing counted) if C{call_id} of
        C{user} is counted already.
        """
        key = (call_id, user)
        if key in self._calls:
            return None
        if len(self._calls) >= self.max_calls:
            _, oldest = self._calls.popitem(last=False)
            self._forget(oldest)
            self._ended(oldest, ENDED_EVICTED)
        setup = self.setup_timeout
        limit = setup if 0 < setup < self.max_duration else self.max_duration
        call = Call(call_id, user, source, now, now + limit, confirmed=False)
        self._calls[key] = call
        self._users_of.setdefault(call_id, []).append(user)
        self._per_user[user] = self._per_user.get(user, 0) + 1
        self._schedule(call)
        return call

    def confirm(self, call_id: str) -> int:
        """An ACK with C{call_id} was seen: its calls run to C{max_duration}."""
        confirmed = 0
        for user in self._users_of.get(call_id, ()):
            call = self._calls[(call_id, user)]
            if call.confirmed:
                continue
            call.confirmed = True
            deadline = call.started + self.max_duration
            if deadline != call.deadline:
                call.deadline = deadline
                self._schedule(call)
            confirmed += 1
        return confirmed

    def release(self, call_id: str, reason: str, user: str | None = None) -> list[Call]:
        """End the calls with C{call_id} (of C{user} only, if given)."""
        users = self._users_of.get(call_id)
        if not users:
            return []
        ended = []
        for who in list(users):
            if user is not None and who != user:
                continue
            call = self._calls.pop((call_id, who))
            self._forget(call)
            ended.append(call)
        for call in ended:
            self._ended(call, reason)
        return ended

    def expire(self, now: float) -> list[Call]:
        """End every call whose deadline is C{now} or earlier."""
        heap = self._deadlines
        ended = []
        while heap and heap[0][0] <= now:
            deadline, _, call_id, user = heapq.heappop(heap)
            call = self._calls.get((call_id, user))
            if call is None or call.deadline != deadline:
                continue  # ended or rescheduled meanwhile
            del self._calls[(call_id, user)]
            self._forget(call)
            ended.append(call)
        for call in ended:
            reason = (
                ENDED_MAX_DURATION
                if call.confirmed or call.deadline - call.started >= self.max_duration
                else ENDED_SETUP_TIMEOUT
            )
            self._ended(call, reason)
        return ended

    def _schedule(self, call: Call) -> None:
        heap = self._deadlines
        heapq.heappush(heap, (call.deadline, next(self._order), call.call_id, call.user))
        # Released calls leave stale entries: rebuild when they dominate.
        if len(heap) > 2 * len(self._calls) + 64:
            self._deadlines = [
                (c.deadline, next(self._order), c.call_id, c.user) for c in self._calls.values()
            ]
            heapq.heapify(self._deadlines)

    def _forget(self, call: Call) -> None:
        users = self._users_of.get(call.call_id)
        if users is not None:
            users.remove(call.user)
            if not users:
                del self._users_of[call.call_id]
        count = self._per_user.get(call.user, 0) - 1
        if count > 0:
            self._per_user[call.user] = count
        else:
            self._per_user.pop(call.user, None)

    def _ended(self, call: Call, reason: str) -> None:
        if self.on_end is not None:
            self.on_end(call, reason)


@attrs.frozen
class Refusal:
    """
    Why the guard refuses a call.

    @ivar rule: one of L{TOLL_FRAUD_RULES}.
    @ivar detail: for people.
    """

    rule: str
    detail: str


@implementer(IProxyObserver, IDialogListener)
class TollFraudGuard:
    """
    The toll-fraud checks and their state, for the C{toll-fraud} stage.

    Give it to the proxy core as an observer too
    (C{ProxyCore(observers=[..., guard])}), so that the slot of an INVITE
    that the chain does not forward after all is given back at once.

    @ivar config: the L{TollFraudConfig}.
    @ivar calls: the L{CallTracker}.
    @ivar stats: the counters (L{TOLL_FRAUD_STAT_KEYS}).
    """

    _log = Logger()

    def __init__(
        self,
        config: TollFraudConfig | None = None,
        *,
        clock: IReactorTime,
        is_trusted: Callable[[str], bool] | None = None,
        stats: MutableMapping[str, int] | None = None,
    ) -> None:
        """
        @param is_trusted: tells whether a source address is in a trusted
            network (C{StageServices.is_trusted}); none is, by default.
        @param stats: the counters to bump (e.g. C{Security.stats}); a new
            dict by default.
        """
        self.config = config = config if config is not None else TollFraudConfig()
        self.clock = clock
        self._is_trusted = is_trusted if is_trusted is not None else (lambda host: False)
        self.stats = stats if stats is not None else {}
        for key in TOLL_FRAUD_STAT_KEYS:
            self.stats.setdefault(key, 0)
        self.calls = CallTracker(
            max_duration=config.max_call_duration,
            setup_timeout=config.call_setup_timeout,
            max_calls=config.max_calls,
            on_end=self._call_ended,
        )
        # user -> times of their last calls (at most calls_per_minute kept)
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    @classmethod
    def from_config(cls, config: Config, clock: IReactorTime, stats: Any = None) -> TollFraudGuard:
        """
        The guard of a whole L{sipedge.config.Config}: its
        C{[security.toll_fraud]} and C{sip.trusted}.
        """
        from sipedge.security._address import TrustedNetworks

        section = config.security.toll_fraud
        trusted = TrustedNetworks(config.sip.trusted)
        return cls(section, clock=clock, is_trusted=trusted.__contains__, stats=stats)

    # -- the stage ---------------------------------------------------------

    def check(self, context: Any) -> Refusal | None:
        """
        Check the request in C{context} (a RequestContext); C{None} lets it
        through. Watches every BYE, CANCEL and ACK to end or confirm calls.
        Logs each refusal through C{context.log}.
        """
        request = context.request
        method = request.method
        now = self.clock.seconds()
        self.calls.expire(now)
        if method in ("BYE", "CANCEL", "ACK"):
            call_id = call_id_of(request)
            if call_id is not None:
                if method == "ACK":
                    self.calls.confirm(call_id)
                else:
                    self.calls.release(
                        call_id, ENDED_BY_BYE if method == "BYE" else ENDED_BY_CANCEL
                    )
            return None
        if context.annotations.get("responsibility") != "relay":
            return None
        if not is_initial_invite(request):
            return None
        user = context.identity
        source = context.flow.remote_host
        trusted = self._is_trusted(source)
        if user is None and not trusted:
            return None  # a relay we do not vouch for (in a dialog through us)
        config = self.config
        try:
            number = dialled_number(request.request_uri)
        except MessageParseError:
            number = ""
        if not trusted or config.trusted_prefix_checks:
            refusal = self._check_prefixes(number)
            if refusal is not None:
                return self._refuse(context, refusal, user, source, number)
        if user is None or trusted:
            return None  # a trunk: no per-user limits
        call_id = call_id_of(request)
        if call_id is None:
            return None  # sanity's business
        if self.calls.get(call_id, user) is not None:
            return None  # the same call again (after a 491, say): counted once
        limit = config.max_concurrent_calls
        if limit and self.calls.active(user) >= limit:
            refusal = Refusal(
                "toll-fraud-concurrent", f"{self.calls.active(user)} calls already (limit {limit})"
            )
            return self._refuse(context, refusal, user, source, number)
        per_minute = config.calls_per_minute
        if per_minute:
            recent = self._recent_calls(user, now)
            if len(recent) >= per_minute:
                refusal = Refusal(
                    "toll-fraud-rate",
                    f"{len(recent)} calls in the last minute (limit {per_minute})",
                )
                return self._refuse(context, refusal, user, source, number)
            recent.append(now)
        self.calls.start(call_id, user, source, now)
        self.stats["toll_fraud_calls_started"] += 1
        context.annotations["toll-fraud"] = {"user": user, "call_id": call_id, "number": number}
        return None

    def _check_prefixes(self, number: str) -> Refusal | None:
        config = self.config
        denied = match_prefix(number, config.deny_prefixes)
        if denied is not None:
            return Refusal("toll-fraud-deny", f"{denied!r} is a denied prefix")
        if config.allow_prefixes and match_prefix(number, config.allow_prefixes) is None:
            return Refusal("toll-fraud-allow", "not an allowed prefix")
        return None

    def _recent_calls(self, user: str, now: float) -> deque[float]:
        recent_by_user = self._recent
        recent = recent_by_user.get(user)
        if recent is None:
            # Forget up to two idle users, then the oldest if still full.
            for _ in range(2):
                if not recent_by_user:
                    break
                oldest = next(iter(recent_by_user.values()))
                if oldest and oldest[-1] > now - _MINUTE:
                    break
                recent_by_user.popitem(last=False)
            if len(recent_by_user) >= self.config.max_users:
                recent_by_user.popitem(last=False)
            recent = recent_by_user[user] = deque(maxlen=self.config.calls_per_minute)
        else:
            recent_by_user.move_to_end(user)
        since = now - _MINUTE
        while recent and recent[0] <= since:
            recent.popleft()
        return recent

    def _refuse(
        self, context: Any, refusal: Refusal, user: str | None, source: str, number: str
    ) -> Refusal:
        stats = self.stats
        stats["toll_fraud_refused"] += 1
        stats["toll_fraud_" + refusal.rule.rsplit("-", 1)[1]] += 1
        context.log.warn(
            "Refusing call from {user} at {source} to {number}: {rule}: {detail}",
            rule=refusal.rule,
            detail=refusal.detail,
            user=user,
            source=source,
            number=number,
            uri=context.request.uri,
            method=context.request.method,
            call_id=call_id_of(context.request),
        )
        return refusal

    # -- IProxyObserver -----------------------------------------------------

    def request_decided(self, context: Any, result: Any) -> None:
        """Give back the slot of a call that the chain did not forward."""
        noted = context.annotations.get("toll-fraud")
        if noted is None or isinstance(result, Forward):
            return
        self.calls.release(noted["call_id"], ENDED_NOT_FORWARDED, user=noted["user"])

    def response_relayed(self, context: Any, response: Any) -> None:
        """
        Give back the slot of a call whose INVITE failed: C{response} is a
        final 3xx-6xx relayed upstream for the INVITE of C{context} (the
        C{toll-fraud} stage's response side calls this). A 3xx counts too:
        a redirected caller places a new call, with a new INVITE.
        """
        if context is None or response.status < 300:
            return
        noted = context.annotations.pop("toll-fraud", None)
        if noted is None:
            return
        self.calls.release(noted["call_id"], ENDED_FAILED, user=noted["user"])

    # -- IDialogListener ----------------------------------------------------

    def dialog_ended(self, call_id: str, caller_tag: str, callee_tag: str, reason: str) -> None:
        """
        The proxy's dialog table says the dialog of C{call_id} is over: its
        slot is given back now, also when no BYE passed this stage (the
        proxy ended the call itself, a 481 or 408, no refresh), instead of
        at C{max_call_duration}.
        """
        self.calls.release(call_id, ENDED_BY_BYE if reason == "bye" else ENDED_DIALOG)

    # -- upkeep -------------------------------------------------------------

    def expire(self) -> None:
        """Release the calls past their deadline now."""
        self.calls.expire(self.clock.seconds())

    def active_calls(self, user: str) -> int:
        """The calls of C{user} now."""
        self.expire()
        return self.calls.active(user)

    def _call_ended(self, call: Call, reason: str) -> None:
        if reason in (ENDED_SETUP_TIMEOUT, ENDED_MAX_DURATION):
            self.stats["toll_fraud_calls_expired"] += 1
        elif reason == ENDED_EVICTED:
            self.stats["toll_fraud_calls_evicted"] += 1
        else:
            self.stats["toll_fraud_calls_ended"] += 1
        log = (
            self._log.debug
            if reason in (ENDED_BY_BYE, ENDED_BY_CANCEL, ENDED_FAILED)
            else self._log.info
        )
        log(
            "Call {call_id} of {user} released: {reason}",
            call_id=call.call_id,
            user=call.user,
            source=call.source,
            reason=reason,
            duration=round(self.clock.seconds() - call.started, 3),
            rule="toll-fraud",
        )
