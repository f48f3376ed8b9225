# -*- test-case-name: sipedge.test.test_registrar -*-
"""
The registrar (RFC 3261 section 10.3): turns an authenticated REGISTER into
changes of the location service and the response that reports them.

It is independent of the pipeline: a stage calls
L{Registrar.handle_register} once the request is known to be for our
domain and authenticated (steps 1 to 3 of RFC 3261 10.3), and sends the
Response it fires with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipedge.error import LocalProtocolError, MessageParseError
from sipedge.flow import Flow, format_hostport
from sipedge.interfaces import ILocationStore
from sipedge.message import NameAddress, Request, Response, SipURI, detect_nat, quote_text
from sipedge.store import Binding, aor_of, same_binding
from sipedge.transaction import make_response

__all__ = ["Registrar"]

_log = Logger()


class _Reject(Exception):
    """Ends REGISTER processing with a final response."""

    def __init__(self, status: int, why: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(why)
        self.status = status
        self.why = why
        self.headers = tuple(headers)


def _to_tag(request: Request) -> str:
    """
    A To tag for our response (RFC 3261 8.2.6.2), the same for every
    retransmission of the request, so it needs no state and no randomness.
    """
    digest = hashlib.sha256()
    for name in ("Call-ID", "From", "CSeq", "Via"):
        digest.update((request.headers.get(name) or "").encode("utf-8", "surrogateescape"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def _format_q(q: float) -> str:
    """A qvalue (RFC 3261 25.1): at most three decimals, no trailing zeros."""
    text = f"{q:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def _contact_value(binding: Binding, now: float) -> str:
    """A Contact value of a 200 to REGISTER (RFC 3261 10.3 step 8)."""
    value = f"<{binding.contact}>;expires={binding.expires_in(now)}"
    if binding.q != 1.0:
        value += f";q={_format_q(binding.q)}"
    if binding.instance is not None:
        value += f";+sip.instance={quote_text(binding.instance)}"
    if binding.reg_id is not None:
        value += f";reg-id={binding.reg_id}"
    return value


def _received(flow: Flow) -> str:
    """Where a request arrived from, as a SIP URI."""
    hostport = format_hostport(flow.remote_host, flow.remote_port)
    return f"sip:{hostport};transport={flow.transport.lower()}"


class Registrar:
    """
    RFC 3261 10.3 steps 4 to 8 over an L{ILocationStore}.

    @param store: where bindings live.
    @param clock: the time source (C{clock.seconds()}) and, for
        L{start_expiry}, the scheduler.
    @param min_expires: the shortest registration accepted, in seconds;
        shorter ones (other than 0) get 423 with Min-Expires (RFC 3261
        10.3 step 7, 20.23).
    @param max_expires: longer registrations are shortened to this.
    @param default_expires: used when neither the Contact's C{expires}
        parameter nor the Expires header gives one.
    @param nat_expires: the longest registration of a phone detected
        behind NAT (L{sipedge.message.detect_nat}), so that it refreshes its
        NAT binding and we learn soon when it is gone; C{None} for no
        such limit.
    """

    def __init__(
        self,
        store: ILocationStore,
        clock: IReactorTime,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        nat_expires: int | None = None,
    ) -> None:
        if not 0 <= min_expires <= default_expires <= max_expires:
            raise ValueError(
                "need 0 <= min_expires <= default_expires <= max_expires, got"
                f" {min_expires}, {default_expires}, {max_expires}"
            )
        self.store = store
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.nat_expires = nat_expires
        #: Told C{(aor, bindings, now)} after each successful update: the
        #: AOR's bindings as they now are (L{sipedge.proxy.NatKeepalive}).
        self.on_registered: list[Callable[[str, list[Binding], float], None]] = []
        self._clock = clock
        self._expiry: LoopingCall | None = None

    # -- REGISTER ------------------------------------------------------------

    def handle_register(self, request: Request, flow: Flow) -> Deferred[Response]:
        """
        Process C{request}, a REGISTER that arrived on C{flow}, and fire with
        the response to send: 200 listing every current binding, or 400,
        423 or 500. The Deferred fails only if C{request} is not a REGISTER.
        """
        if request.method != "REGISTER":
            return defer.fail(LocalProtocolError(f"not a REGISTER: {request.method}"))
        return Deferred.fromCoroutine(self._handle(request, flow))

    async def _handle(self, request: Request, flow: Flow) -> Response:
        tag = _to_tag(request)
        try:
            headers = await self._process(request, flow)
        except _Reject as reject:
            _log.info(
                "Rejected REGISTER {call_id}: {status} {why}",
                call_id=request.headers.get("Call-ID"),
                status=reject.status,
                why=reject.why,
            )
            return make_response(request, reject.status, headers=reject.headers, to_tag=tag)
        except Exception:
            # RFC 3261 10.3 step 7: if a binding update fails (the back-end
            # commit), the request fails with a 500.
            _log.failure(
                "Location store failed on REGISTER {call_id}",
                call_id=request.headers.get("Call-ID"),
            )
            return make_response(request, 500, to_tag=tag)
        return make_response(request, 200, headers=headers, to_tag=tag)

    async def _process(self, request: Request, flow: Flow) -> list[tuple[str, str]]:
        """The headers of the 200, or raise L{_Reject}."""
        try:
            to = request.to_address
            call_id = request.call_id
            cseq = request.cseq.number
            contacts = request.contacts
            header_expires = request.expires
        except MessageParseError as e:
            raise _Reject(400, e.reason) from e
        # RFC 3261 10.2: "This address-of-record MUST be a SIP URI or SIPS
        # URI"; RFC 4475 3.3.4 (unksm2) expects a registrar to answer 400.
        if not isinstance(to.uri, SipURI):
            raise _Reject(400, f"To is not a SIP or SIPS URI: {to.uri.scheme}")
        aor = aor_of(to.uri)  # step 5
        now = self._clock.seconds()
        store = self.store

        if not contacts:
            # Step 6: no Contact, a query.
            current = await store.lookup(aor, now)
            return [("Contact", _contact_value(b, now)) for b in current]

        if isinstance(contacts, str):  # "*"
            # Step 6: "*" only alone (the parser checks) and with Expires: 0.
            if header_expires != 0:
                raise _Reject(400, "wildcard Contact without Expires: 0")
            current = await store.lookup(aor, now)
            for old in current:
                if old.call_id == call_id and old.cseq >= cseq:
                    raise _Reject(500, f"CSeq {cseq} not above {old.cseq} of {old.contact}")
            await store.remove_all(aor)
            self._tell(aor, [], now)
            _log.info("Removed every binding of {aor}", aor=aor, count=len(current))
            return []

        new = self._bindings(request, flow, aor, contacts, header_expires, now)
        # Step 7: "If the Call-ID agrees, [the registrar] MUST update or
        # remove the binding only if the CSeq in the request is higher ...
        # If not, the update MUST be aborted and the request fails." A
        # failed request is a 500 (10.3, the last paragraph of step 7), and
        # nothing is changed: every binding is checked before any update.
        current = await store.lookup(aor, now)
        for binding in new:
            for old in current:
                if (
                    same_binding(old, binding)
                    and old.call_id == binding.call_id
                    and old.cseq >= binding.cseq
                ):
                    raise _Reject(500, f"CSeq {binding.cseq} not above {old.cseq} of {old.contact}")
        result = await store.update(aor, new, now)
        self._tell(aor, list(result), now)
        _log.info(
            "REGISTER {call_id} for {aor}: {count} bindings",
            call_id=call_id,
            aor=aor,
            count=len(result),
            contacts=[b.contact for b in result],
        )
        headers = [("Contact", _contact_value(b, now)) for b in result]
        if any(b.reg_id is not None for b in new):
            headers.append(("Require", "outbound"))  # RFC 5626 section 6
        return headers

    def _tell(self, aor: str, bindings: list[Binding], now: float) -> None:
        for observer in self.on_registered:
            try:
                observer(aor, bindings, now)
            except Exception:
                _log.failure("Registration observer {observer!r} failed", observer=observer)

    def _bindings(
        self,
        request: Request,
        flow: Flow,
        aor: str,
        contacts: Sequence[NameAddress],
        header_expires: int | None,
        now: float,
    ) -> list[Binding]:
        """The bindings a REGISTER asks for, or raise L{_Reject}."""
        try:
            path = tuple(request.headers.values("Path"))
            outbound = "outbound" in request.option_tags("Supported")
        except MessageParseError as e:
            raise _Reject(400, e.reason) from e
        user_agent = request.headers.get("User-Agent")
        received = _received(flow)
        cap = self.max_expires
        if self.nat_expires is not None:
            verdict = detect_nat(request, flow)
            if verdict.behind_nat:
                cap = min(cap, max(self.nat_expires, self.min_expires))
                _log.info(
                    "REGISTER {call_id} for {aor}: {verdict}; at most {cap} s",
                    call_id=request.headers.get("Call-ID"),
                    aor=aor,
                    verdict=str(verdict),
                    cap=cap,
                )
        call_id = request.call_id
        cseq = request.cseq.number

        new: list[Binding] = []
        too_brief = []
        for contact in contacts:
            try:
                expires = contact.expires
                q = contact.q
            except MessageParseError as e:
                raise _Reject(400, e.reason) from e
            if expires is None:
                expires = self.default_expires if header_expires is None else header_expires
            if 0 < expires < self.min_expires:
                too_brief.append(str(contact.uri))
            expires = min(expires, cap)
            instance = contact.param("+sip.instance") or None
            reg_id = None
            reg_id_text = contact.param("reg-id")
            # RFC 5626 section 6: reg-id counts only with an instance and
            # with "outbound" in Supported; otherwise RFC 3261 rules apply.
            if instance is not None and outbound and reg_id_text is not None:
                if not reg_id_text.isdigit() or not 1 <= int(reg_id_text) < 2**31:
                    raise _Reject(400, f"bad reg-id {reg_id_text[:20]!r}")
                reg_id = int(reg_id_text)
            new.append(
                Binding(
                    aor=aor,
                    contact=str(contact.uri),
                    expires_at=now + expires,
                    q=1.0 if q is None else q,
                    call_id=call_id,
                    cseq=cseq,
                    flow=flow,
                    path=path,
                    instance=instance,
                    reg_id=reg_id,
                    user_agent=user_agent,
                    received=received,
                )
            )
        if too_brief:
            raise _Reject(
                423,
                f"expires below {self.min_expires} for {', '.join(too_brief)}",
                [("Min-Expires", str(self.min_expires))],
            )
        return new

    # -- expiry ----------------------------------------------------------------

    def start_expiry(self, interval: float) -> None:
        """
        Remove expired bindings from the store every C{interval} seconds,
        until L{stop_expiry}. Lookups never return expired bindings; this
        only keeps the store small.
        """
        if self._expiry is not None:
            raise LocalProtocolError("expiry already started")
        loop = LoopingCall(self._expire)
        loop.clock = self._clock
        self._expiry = loop
        loop.start(interval, now=False).addErrback(self._expiry_stopped)

    def stop_expiry(self) -> None:
        """Stop what L{start_expiry} started (no error if not started)."""
        loop, self._expiry = self._expiry, None
        if loop is not None and loop.running:
            loop.stop()

    def _expire(self) -> Deferred[None]:
        d = defer.maybeDeferred(self.store.expire, self._clock.seconds())
        return d.addCallbacks(self._expired, self._expire_failed)

    def _expired(self, count: int) -> None:
        if count:
            _log.info("Expired {count} bindings", count=count)

    def _expire_failed(self, failure: Failure) -> None:
        _log.failure("Could not expire bindings", failure)

    def _expiry_stopped(self, failure: Failure) -> None:
        self._expiry = None
        _log.failure("Binding expiry stopped", failure)
