# -*- test-case-name: sipedge.test.test_stage_digest_auth -*-
"""
Tests for the digest-auth stage (L{sipedge.pipeline.stages._digest_auth}).
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import attrs
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.auth import (
    DATABASE_NAME,
    SECRET_NAME,
    MemoryCredentialStore,
    NonceSource,
    SQLiteCredentialStore,
    ha1,
    make_portal,
    response,
)
from sipedge.config import Config, SipConfig, StateConfig
from sipedge.error import ConfigError
from sipedge.flow import Flow
from sipedge.interfaces import IRequestStage
from sipedge.message import (
    DigestChallenge,
    DigestCredentials,
    Request,
    parse_auth_header,
    parse_datagram,
)
from sipedge.pipeline import Continue, RequestContext, Respond, StageServices, stage_factories
from sipedge.pipeline.stages import DigestAuthStage, build_digest_auth_stage
from sipedge.proxy import LocalIdentity
from sipedge.security import Monitor, MonitorConfig, Security, SecurityConfig
from sipedge.testing import capture_log

PROXY = "192.0.2.1"
SOURCE = "198.51.100.7"
FLOW = Flow("UDP", PROXY, 5060, SOURCE, 5060)
REALM = "example.com"
SECRET = b"0123456789abcdef0123456789abcdef"
ALL = ("SHA-512-256", "SHA-256", "MD5")


def request(
    method: str = "INVITE",
    uri: str = "sip:carol@elsewhere.net",
    *,
    sender: str = "sip:alice@example.com",
    to: str | None = None,
    fields: tuple[str, ...] = (),
    body: bytes = b"",
) -> Request:
    """A request from C{sender}; To is C{uri} unless given."""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {SOURCE}:5060;branch=z9hG4bK-da1",
        "Max-Forwards: 70",
        f"From: <{sender}>;tag=f1",
        f"To: <{to or uri}>",
        "Call-ID: auth-1@198.51.100.7",
        f"CSeq: 1 {method}",
        *fields,
        *(["Content-Type: application/sdp"] if body else []),
        f"Content-Length: {len(body)}",
    ]
    message = parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(message, Request)
    return message


def challenges(result: Any) -> list[DigestChallenge]:
    """The digest challenges of a 401 or 407."""
    assert isinstance(result, Respond), result
    name = "WWW-Authenticate" if result.status == 401 else "Proxy-Authenticate"
    return [parse_auth_header(value).as_challenge() for key, value in result.headers if key == name]


def answer(
    result: Any,
    req: Request,
    *,
    username: str = "alice",
    password: str = "secret",
    algorithm: str | None = None,
    qop: str | None = "auth",
    nc: int = 1,
    cnonce: str = "c0ffee",
    uri: str | None = None,
    realm: str | None = None,
    method: str | None = None,
) -> Request:
    """
    C{req} with the credentials a client puts in after the challenge
    C{result}: for C{algorithm} (default: the first offered).
    """
    offered = challenges(result)
    challenge = offered[0]
    if algorithm is not None:
        challenge = next((c for c in offered if c.algorithm == algorithm), challenge)
        chosen: str | None = algorithm
    else:
        chosen = challenge.algorithm
    uri = req.uri if uri is None else uri
    realm = challenge.realm if realm is None else realm
    nc_text = f"{nc:08x}" if qop is not None else None
    sess_cnonce = cnonce if qop is not None or (chosen or "").endswith("-sess") else None
    value = response(
        chosen,
        ha1(chosen, username, realm, password),
        method or req.method,
        uri,
        challenge.nonce,
        qop=qop,
        nc=nc_text,
        cnonce=sess_cnonce,
        body=req.body,
    )
    credentials = DigestCredentials(
        username=username,
        realm=realm,
        nonce=challenge.nonce,
        uri=uri,
        response=value,
        algorithm=chosen,
        cnonce=sess_cnonce,
        qop=qop,
        nc=nc_text,
    )
    name = "Authorization" if result.status == 401 else "Proxy-Authorization"
    return req.with_headers(req.headers.added(name, str(credentials)))


class DigestAuthStageTests(SynchronousTestCase):
    """Tests for L{DigestAuthStage}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(5000)
        self.store = MemoryCredentialStore()
        self.store.add("alice", REALM, "secret")
        self.store.add("bob", REALM, "hunter2")
        self.nonces = NonceSource(SECRET, self.clock, 300)
        self.stage = DigestAuthStage(make_portal(self.store), self.nonces, REALM)
        self.services: Any = StageServices(
            clock=self.clock,
            local=LocalIdentity(["example.com", "example.org"], [("UDP", PROXY, 5060)]),
        )
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def decide(self, req: Request, stage: DigestAuthStage | None = None) -> Any:
        """The stage's result (a Deferred's result if it returns one)."""
        self.context = RequestContext(req, FLOW, self.services)
        result = (stage or self.stage).process_request(self.context)
        if isinstance(result, Deferred):
            return self.successResultOf(result)
        return result

    def authenticated(self, req: Request, **kwargs: Any) -> tuple[Any, Request]:
        """Challenge C{req}, answer, and decide again: the result and the answered request."""
        challenged = self.decide(req)
        answered = answer(challenged, req, **kwargs)
        return self.decide(answered), answered

    @property
    def note(self) -> dict[str, Any]:
        return self.context.annotations["digest-auth"]

    # -- challenges ----------------------------------------------------------

    def test_interface(self) -> None:
        """L{DigestAuthStage} provides L{IRequestStage} and is named digest-auth."""
        verifyObject(IRequestStage, self.stage)
        self.assertEqual(self.stage.name, "digest-auth")

    def test_proxy_challenge(self) -> None:
        """
        A request from one of our users without credentials gets 407 with
        one Proxy-Authenticate: MD5 alone while the user has proven nothing
        stronger (what every measured client answers), with qop
        auth,auth-int and a valid nonce.
        """
        result = self.decide(request())
        self.assertEqual(result.status, 407)
        self.assertEqual([name for name, _ in result.headers], ["Proxy-Authenticate"])
        offered = challenges(result)
        self.assertEqual([c.algorithm for c in offered], ["MD5"])
        for challenge in offered:
            self.assertEqual(challenge.realm, REALM)
            self.assertEqual(challenge.qop, ("auth", "auth-int"))
            self.assertFalse(challenge.stale)
        self.assertEqual(self.nonces.validate(offered[0].nonce, REALM).name, "VALID")
        self.assertEqual(
            result.headers[0][1],
            f'Digest realm="example.com", nonce="{offered[0].nonce}",'
            ' algorithm=MD5, qop="auth,auth-int"',
        )
        self.assertEqual(
            self.note,
            {"result": "challenged", "reason": "no credentials", "source": SOURCE, "user": None},
        )

    def test_challenge_logged_at_debug(self) -> None:
        """
        A challenge is logged at debug level (every phone's first step, and
        most of a flood from strangers), a success at info.
        """
        events = capture_log(self)
        self.decide(request())
        self.authenticated(request())
        levels = {e["result"]: e["log_level"] for e in events if e.get("rule") == "digest-auth"}
        self.assertEqual(levels, {"challenged": LogLevel.debug, "ok": LogLevel.info})

    def test_challenges_cached(self) -> None:
        """
        The challenge values come from templates: a second challenge with
        the same algorithms reuses them, with its own fresh nonce.
        """
        first = challenges(self.decide(request()))
        second = challenges(self.decide(request()))
        self.assertEqual(len(self.stage.challenges._templates), 1)
        self.assertNotEqual(first[0].nonce, second[0].nonce)
        self.assertEqual(self.nonces.validate(second[0].nonce, REALM).name, "VALID")

    def test_strong_challenge(self) -> None:
        """
        A user whose floor is SHA-256 gets one challenge per strong
        algorithm, SHA-256 first, all with the same nonce, and no MD5.
        """
        stage = DigestAuthStage(make_portal(self.store), self.nonces, REALM, minimum="SHA-256")
        offered = challenges(self.decide(request(), stage))
        self.assertEqual([c.algorithm for c in offered], ["SHA-256", "SHA-512-256"])
        self.assertEqual({c.nonce for c in offered}, {offered[0].nonce})

    def test_register_challenge(self) -> None:
        """A REGISTER for our domain gets 401 with WWW-Authenticate."""
        result = self.decide(request("REGISTER", "sip:example.com", to="sip:alice@example.com"))
        self.assertEqual(result.status, 401)
        self.assertEqual([name for name, _ in result.headers], ["WWW-Authenticate"])

    def test_register_foreign_from(self) -> None:
        """
        A REGISTER for our domain is challenged even when its From is not
        ours: nobody binds our AORs unauthenticated.
        """
        req = request(
            "REGISTER", "sip:example.com", sender="sip:eve@evil.example", to="sip:alice@example.com"
        )
        self.assertEqual(self.decide(req).status, 401)

    def test_register_elsewhere(self) -> None:
        """A REGISTER our user sends to another domain's registrar gets 407 from us."""
        req = request("REGISTER", "sip:elsewhere.net", to="sip:alice@elsewhere.net")
        self.assertEqual(self.decide(req).status, 407)

    def test_configured_algorithms(self) -> None:
        """
        Only configured algorithms are offered: MD5 alone when it is
        configured, else the strong ones, SHA-256 first.
        """
        stage = DigestAuthStage(make_portal(self.store), self.nonces, REALM, ("SHA-256", "MD5"))
        self.assertEqual([c.algorithm for c in challenges(self.decide(request(), stage))], ["MD5"])
        stage = DigestAuthStage(
            make_portal(self.store), self.nonces, REALM, ("SHA-512-256", "SHA-256")
        )
        self.assertEqual(
            [c.algorithm for c in challenges(self.decide(request(), stage))],
            ["SHA-256", "SHA-512-256"],
        )

    def test_no_algorithms(self) -> None:
        """A stage must offer some algorithm."""
        self.assertRaises(
            ValueError, DigestAuthStage, make_portal(self.store), self.nonces, REALM, ()
        )

    # -- who is challenged ---------------------------------------------------------

    def test_outside_callers(self) -> None:
        """A request from outside to one of our users passes unchallenged."""
        req = request("INVITE", "sip:alice@example.com", sender="sip:carol@elsewhere.net")
        self.assertEqual(self.decide(req), Continue())
        self.assertNotIn("digest-auth", self.context.annotations)

    def test_ack_cancel(self) -> None:
        """ACK and CANCEL are never challenged (RFC 3261 22.1)."""
        for method in ("ACK", "CANCEL"):
            self.assertEqual(self.decide(request(method)), Continue())

    def test_in_dialog(self) -> None:
        """
        A request within a dialog set up through us (our signed Route came
        back: the route stage annotated it) is not challenged; a REGISTER
        still is.
        """
        self.context = RequestContext(request("BYE"), FLOW, self.services)
        self.context.annotations["route"] = "dialog"
        self.assertEqual(self.stage.process_request(self.context), Continue())
        register = request("REGISTER", "sip:example.com", to="sip:alice@example.com")
        self.context = RequestContext(register, FLOW, self.services)
        self.context.annotations["route"] = "dialog"
        result = self.stage.process_request(self.context)
        if isinstance(result, Deferred):
            result = self.successResultOf(result)
        assert isinstance(result, Respond), result
        self.assertEqual(result.status, 401)

    def test_register_only(self) -> None:
        """With C{require_for_our_domains} off, only REGISTER is challenged."""
        stage = DigestAuthStage(
            make_portal(self.store), self.nonces, REALM, require_for_our_domains=False
        )
        self.assertEqual(self.decide(request(), stage), Continue())
        register = request("REGISTER", "sip:example.com", to="sip:alice@example.com")
        self.assertEqual(self.decide(register, stage).status, 401)

    def test_bad_from(self) -> None:
        """A From that does not parse gets 400."""
        req = request()
        req = req.with_headers(req.headers.replaced("From", "<sip:alice@example.com"))
        self.assertEqual(self.decide(req).status, 400)

    # -- success ---------------------------------------------------------------

    def test_success_each_algorithm(self) -> None:
        """
        Right credentials for any accepted algorithm, weakest first: the
        request goes on, C{identity} is the user's AOR, and the annotation
        says ok.
        """
        for algorithm in reversed(ALL):
            result, _ = self.authenticated(request(), algorithm=algorithm)
            self.assertEqual(result, Continue())
            self.assertEqual(self.context.identity, "sip:alice@example.com")
            self.assertEqual(
                self.note,
                {
                    "result": "ok",
                    "reason": "authenticated",
                    "source": SOURCE,
                    "user": "alice",
                    "algorithm": algorithm,
                },
            )

    def test_success_auth_int(self) -> None:
        """qop auth-int covers the body; a changed body fails."""
        req = request(body=b"v=0\r\n")
        result, answered = self.authenticated(req, qop="auth-int")
        self.assertEqual(result, Continue())
        changed = answered.with_body(b"v=1\r\n")
        failed = self.decide(changed)
        self.assertEqual((failed.status, self.note["result"]), (407, "failed"))

    def test_success_sess(self) -> None:
        """A -sess algorithm, when offered, works from the stored H(A1)."""
        stage = DigestAuthStage(make_portal(self.store), self.nonces, REALM, ("SHA-256-sess",))
        challenged = self.decide(request(), stage)
        self.assertEqual(self.decide(answer(challenged, request()), stage), Continue())

    def test_consumes_proxy_authorization(self) -> None:
        """
        Our Proxy-Authorization values are removed from the forwarded
        request; another realm's, and Authorization, stay (RFC 3261 22.3).
        """
        other = 'Digest username="a", realm="upstream.net", nonce="n", uri="sip:x", response="0"'
        end_to_end = 'Digest username="a", realm="carol.net", nonce="n", uri="sip:x", response="0"'
        req = request(fields=(f"Proxy-Authorization: {other}", f"Authorization: {end_to_end}"))
        result, answered = self.authenticated(req)
        self.assertEqual(result, Continue())
        self.assertEqual(len(answered.headers.get_all("Proxy-Authorization")), 2)
        self.assertEqual(self.context.request.headers.get_all("Proxy-Authorization"), (other,))
        self.assertEqual(self.context.request.headers.get_all("Authorization"), (end_to_end,))
        self.assertEqual(self.context.original, answered)

    def test_register_success(self) -> None:
        """
        An authenticated REGISTER of one's own AOR goes on, with its
        Authorization (meant for the registrar, which is us) left in place.
        """
        req = request("REGISTER", "sip:example.com", to="sip:alice@example.com")
        result, answered = self.authenticated(req)
        self.assertEqual(result, Continue())
        self.assertEqual(self.context.identity, "sip:alice@example.com")
        self.assertEqual(self.context.request, answered)

    def test_register_other_domain_of_ours(self) -> None:
        """Our domains are one user space: alice may register sip:alice@example.org."""
        req = request(
            "REGISTER",
            "sip:example.org",
            sender="sip:alice@example.org",
            to="sip:alice@example.org",
        )
        result, _ = self.authenticated(req)
        self.assertEqual(result, Continue())

    def test_rfc2069(self) -> None:
        """A response without qop (RFC 2069) is accepted once; its nonce is then used up."""
        result, answered = self.authenticated(request(), qop=None)
        self.assertEqual(result, Continue())
        again = self.decide(answered)
        self.assertEqual(again.status, 407)
        self.assertEqual(self.note["reason"], "replayed nonce count")

    def test_nonce_reuse(self) -> None:
        """A client may reuse a nonce with rising nonce counts."""
        challenged = self.decide(request())
        for nc in (1, 2, 5):
            self.assertEqual(self.decide(answer(challenged, request(), nc=nc)), Continue())

    def test_store_deferred(self) -> None:
        """A store that answers later makes the stage answer later."""
        pending: Deferred[dict[str, str]] = Deferred()

        class Slow:
            def lookup(self, username: str, realm: str) -> Deferred[dict[str, str]]:
                return pending

        stage = DigestAuthStage(make_portal(Slow()), self.nonces, REALM)
        answered = answer(self.decide(request()), request(), algorithm="MD5")
        context = RequestContext(answered, FLOW, self.services)
        d = stage.process_request(context)
        assert isinstance(d, Deferred)
        self.assertNoResult(d)
        pending.callback({"MD5": ha1("MD5", "alice", REALM, "secret")})
        self.assertEqual(self.successResultOf(d), Continue())

    def test_store_error(self) -> None:
        """A store that fails fails the stage (the chain answers 500)."""

        class Broken:
            def lookup(self, username: str, realm: str) -> Deferred[dict[str, str]]:
                return fail(OSError("disk on fire"))

        stage = DigestAuthStage(make_portal(Broken()), self.nonces, REALM)
        answered = answer(self.decide(request()), request())
        d = stage.process_request(RequestContext(answered, FLOW, self.services))
        self.failureResultOf(d, OSError)

    # -- failures --------------------------------------------------------------

    def test_wrong_password(self) -> None:
        """
        A wrong password is challenged again (no stale), annotated
        C{failed} and logged at warn level with rule, source and user.
        """
        events = capture_log(self)
        result, _ = self.authenticated(request(), password="guess")
        self.assertEqual(result.status, 407)
        self.assertFalse(any(c.stale for c in challenges(result)))
        self.assertEqual(
            self.note,
            {"result": "failed", "reason": "wrong credentials", "source": SOURCE, "user": "alice"},
        )
        self.assertIsNone(self.context.identity)
        failed = [e for e in events if e.get("result") == "failed"]
        self.assertEqual(len(failed), 1)
        self.assertEqual(
            (failed[0]["rule"], failed[0]["source"], failed[0]["user"], failed[0]["log_level"]),
            ("digest-auth", SOURCE, "alice", LogLevel.warn),
        )

    def test_unknown_user(self) -> None:
        """An unknown user fails like a wrong password."""
        result, _ = self.authenticated(
            request(sender="sip:mallory@example.com"), username="mallory"
        )
        self.assertEqual((result.status, self.note["result"]), (407, "failed"))

    def test_offence_reported(self) -> None:
        """A failure is reported to C{services.security} as an auth-failure offence."""
        offences: list[tuple[str, str, str | None]] = []
        security = SimpleNamespace(
            offence=lambda source, kind, detail=None: offences.append((source, kind, detail))
        )
        self.services = SimpleNamespace(local=self.services.local, security=security)
        self.authenticated(request())  # success: no offence
        self.decide(request())  # a plain challenge: no offence
        self.assertEqual(offences, [])
        self.authenticated(request(), password="guess")
        self.assertEqual(len(offences), 1)
        self.assertEqual(offences[0][:2], (SOURCE, "auth-failure"))

    def test_stale(self) -> None:
        """
        Right credentials with an expired nonce get a new challenge with
        stale=true, annotated C{challenged}, not failed.
        """
        challenged = self.decide(request())
        self.clock.advance(300)
        result = self.decide(answer(challenged, request()))
        self.assertEqual(result.status, 407)
        offered = challenges(result)
        self.assertTrue(all(c.stale for c in offered))
        self.assertNotEqual(offered[0].nonce, challenges(challenged)[0].nonce)
        self.assertEqual((self.note["result"], self.note["reason"]), ("challenged", "stale nonce"))
        self.assertEqual(self.decide(answer(result, request())), Continue())

    def test_stale_wrong_password(self) -> None:
        """Wrong credentials with an expired nonce fail, without stale=true (RFC 7616 3.3)."""
        challenged = self.decide(request())
        self.clock.advance(300)
        result = self.decide(answer(challenged, request(), password="guess"))
        self.assertFalse(any(c.stale for c in challenges(result)))
        self.assertEqual(self.note["result"], "failed")

    def test_replay(self) -> None:
        """
        The same credentials sent again (same nonce count) are refused: a
        new challenge with stale=true, annotated failed.
        """
        result, answered = self.authenticated(request())
        self.assertEqual(result, Continue())
        replayed = self.decide(answered)
        self.assertEqual(replayed.status, 407)
        self.assertTrue(all(c.stale for c in challenges(replayed)))
        self.assertEqual(
            (self.note["result"], self.note["reason"]), ("failed", "replayed nonce count")
        )

    def test_unknown_nonce(self) -> None:
        """
        A nonce we did not issue (another secret) with a right digest gets
        a new challenge with stale=true; with a wrong digest it fails.
        """
        other = DigestAuthStage(make_portal(self.store), NonceSource(b"y" * 32, self.clock), REALM)
        challenged = self.decide(request(), other)
        result = self.decide(answer(challenged, request()))
        self.assertTrue(all(c.stale for c in challenges(result)))
        self.assertEqual(
            (self.note["result"], self.note["reason"]), ("challenged", "unknown nonce")
        )
        result = self.decide(answer(challenged, request(), password="guess"))
        self.assertFalse(any(c.stale for c in challenges(result)))
        self.assertEqual(self.note["result"], "failed")

    def test_algorithm_not_offered(self) -> None:
        """Credentials for an algorithm we did not offer fail."""
        stage = DigestAuthStage(make_portal(self.store), self.nonces, REALM, ("SHA-256",))
        challenged = self.decide(request(), stage)
        result = self.decide(answer(challenged, request(), algorithm="MD5"), stage)
        self.assertEqual((result.status, self.note["reason"]), (407, "algorithm MD5 not offered"))
        md5 = answer(challenged, request(), algorithm="MD5")
        value = md5.headers.get("Proxy-Authorization")
        assert value is not None
        unknown = value.replace("algorithm=MD5", "algorithm=SHA-1-ish")
        self.decide(request(fields=(f"Proxy-Authorization: {unknown}",)), stage)
        self.assertEqual(self.note["reason"], "unsupported algorithm 'SHA-1-ish'")

    def test_outcomes_counted(self) -> None:
        """
        Every decision is counted by result and by the algorithm of the
        credentials judged: C{none} without any, C{other} for an algorithm
        we do not know (a bounded label whatever a client sends).
        """
        self.decide(request())
        self.authenticated(request(), password="guess")
        self.authenticated(request(sender="sip:bob@example.com"))
        md5 = answer(self.decide(request()), request(), algorithm="MD5")
        value = md5.headers.get("Proxy-Authorization")
        assert value is not None
        unknown = value.replace("algorithm=MD5", "algorithm=SHA-1-ish")
        self.decide(request(fields=(f"Proxy-Authorization: {unknown}",)))
        self.authenticated(request(), algorithm="SHA-256")
        self.assertEqual(dict(self.stage.outcomes), {
            ("challenged", "none"): 5,
            ("ok", "SHA-256"): 1,
            ("failed", "MD5"): 1,
            ("forbidden", "MD5"): 1,
            ("failed", "other"): 1,
        })

    def test_malformed(self) -> None:
        """Credentials for our realm that do not parse fail."""
        bad = 'Digest username="alice", realm="example.com", nonce="n", uri="sip:x"'
        result = self.decide(request(fields=(f"Proxy-Authorization: {bad}",)))
        self.assertEqual(result.status, 407)
        self.assertEqual((self.note["result"], self.note["user"]), ("failed", "alice"))
        self.assertTrue(self.note["reason"].startswith("malformed credentials"))

    def test_userhash(self) -> None:
        """Credentials with userhash (which we never offer) fail."""
        req = request()
        challenged = self.decide(req)
        answered = answer(challenged, req)
        value = answered.headers.get("Proxy-Authorization")
        assert value is not None
        req = req.with_headers(req.headers.added("Proxy-Authorization", value + ", userhash=true"))
        self.assertEqual(self.decide(req).status, 407)
        self.assertEqual(self.note["reason"], "userhash not offered")

    def test_other_realm_only(self) -> None:
        """Credentials for another realm only, or of another scheme, are just challenged."""
        other = 'Digest username="a", realm="upstream.net", nonce="n", uri="sip:x", response="0"'
        req = request(
            fields=(
                f"Proxy-Authorization: {other}",
                "Proxy-Authorization: Bearer abc",
                "Proxy-Authorization: ,,,",
            )
        )
        self.assertEqual(self.decide(req).status, 407)
        self.assertEqual(self.note["result"], "challenged")

    def test_wrong_header(self) -> None:
        """Authorization does not answer a 407: the request is challenged again."""
        challenged = self.decide(request())
        answered = answer(challenged, request())
        value = answered.headers.get("Proxy-Authorization")
        assert value is not None
        req = request(fields=(f"Authorization: {value}",))
        self.assertEqual(self.decide(req).status, 407)
        self.assertEqual(self.note["result"], "challenged")

    def test_uri_mismatch(self) -> None:
        """Credentials for another URI than the Request-URI get 400 (RFC 2617 3.2.2.5)."""
        challenged = self.decide(request())
        result = self.decide(answer(challenged, request(), uri="sip:dave@elsewhere.net"))
        self.assertEqual(result.status, 400)
        self.assertEqual((self.note["result"], self.note["reason"]), ("failed", "uri mismatch"))

    def test_uri_equivalent(self) -> None:
        """A digest-uri equivalent to the Request-URI (RFC 3261 19.1.4) is accepted."""
        challenged = self.decide(request())
        result = self.decide(answer(challenged, request(), uri="sip:carol@ELSEWHERE.net"))
        self.assertEqual(result, Continue())

    # -- identity rules ------------------------------------------------------------

    def test_from_someone_else(self) -> None:
        """alice's credentials on a request From bob get 403."""
        req = request(sender="sip:bob@example.com")
        result, _ = self.authenticated(req)
        self.assertEqual(result, Respond(403, "Forbidden"))
        self.assertEqual((self.note["result"], self.note["user"]), ("forbidden", "alice"))
        self.assertIsNone(self.context.identity)

    def test_register_someone_else(self) -> None:
        """alice may not REGISTER bob's AOR, nor a foreign From."""
        req = request("REGISTER", "sip:example.com", to="sip:bob@example.com")
        result, _ = self.authenticated(req)
        self.assertEqual(result.status, 403)
        self.assertEqual(self.note["reason"], "To is not the authenticated user's AOR")
        req = request(
            "REGISTER",
            "sip:example.com",
            sender="sip:alice@evil.example",
            to="sip:alice@example.com",
        )
        result, _ = self.authenticated(req)
        self.assertEqual(result.status, 403)
        self.assertEqual(self.note["reason"], "From is not the authenticated user")


class NoDowngradeTests(SynchronousTestCase):
    """The digest-auth stage offers a user nothing weaker than the user proved."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(5000)
        self.store = MemoryCredentialStore()
        self.store.add("alice", REALM, "secret")
        self.store.add("bob", REALM, "hunter2")
        self.nonces = NonceSource(SECRET, self.clock, 300)
        self.stage = DigestAuthStage(make_portal(self.store), self.nonces, REALM, memory=self.store)
        self.services: Any = StageServices(
            clock=self.clock,
            local=LocalIdentity(["example.com"], [("UDP", PROXY, 5060)]),
        )

    def decide(self, req: Any, stage: DigestAuthStage | None = None) -> Any:
        self.context = RequestContext(req, FLOW, self.services)
        result = (stage or self.stage).process_request(self.context)
        if isinstance(result, Deferred):
            return self.successResultOf(result)
        return result

    def test_md5_keeps_md5(self) -> None:
        """A user who authenticated with MD5 is still offered MD5 alone."""
        challenged = self.decide(request())
        self.assertEqual(self.decide(answer(challenged, request())), Continue())
        self.assertEqual(self.store.strongest("alice", REALM), "MD5")
        self.assertEqual([c.algorithm for c in challenges(self.decide(request()))], ["MD5"])

    def test_no_downgrade_after_success(self) -> None:
        """
        Once alice has authenticated with SHA-256, her challenges offer
        SHA-256 and SHA-512-256 and no MD5, and a right MD5 answer is
        refused (counted as a failure); bob, who proved nothing, still gets
        MD5.
        """
        challenged = self.decide(request())
        strong = answer(challenged, request(), algorithm="SHA-256")
        self.assertEqual(self.decide(strong), Continue())
        self.assertEqual(self.store.strongest("alice", REALM), "SHA-256")

        again = self.decide(request())
        self.assertEqual([c.algorithm for c in challenges(again)], ["SHA-256", "SHA-512-256"])
        weak = answer(again, request(), algorithm="MD5")
        refused = self.decide(weak)
        self.assertEqual(refused.status, 407)
        self.assertEqual(self.context.annotations["digest-auth"]["result"], "failed")
        self.assertEqual(
            self.context.annotations["digest-auth"]["reason"],
            "algorithm MD5 is weaker than SHA-256, required of alice",
        )
        self.assertNotIn("MD5", [c.algorithm for c in challenges(refused)])

        bob = request(sender="sip:bob@example.com")
        self.assertEqual([c.algorithm for c in challenges(self.decide(bob))], ["MD5"])

    def test_register_uses_to(self) -> None:
        """A REGISTER's challenge follows the floor of the user in To."""
        self.store.record("alice", REALM, "SHA-512-256")
        register = request(
            "REGISTER", "sip:example.com", sender="sip:x@example.com", to="sip:alice@example.com"
        )
        self.assertEqual([c.algorithm for c in challenges(self.decide(register))], ["SHA-512-256"])

    def test_minimum(self) -> None:
        """C{minimum} raises every user's floor: a right MD5 answer is refused."""
        stage = DigestAuthStage(make_portal(self.store), self.nonces, REALM, minimum="SHA-256")
        plain = DigestAuthStage(make_portal(self.store), self.nonces, REALM)
        md5 = answer(self.decide(request(), plain), request())
        self.assertEqual(self.decide(md5, stage).status, 407)
        self.assertEqual(
            self.context.annotations["digest-auth"]["reason"],
            "algorithm MD5 is weaker than SHA-256, required of alice",
        )

    def test_built_stage_remembers_across_restart(self) -> None:
        """
        A stage built from the configuration remembers in the state
        directory's store: after a restart alice is still offered no MD5.
        """
        state = os.path.abspath(self.mktemp())
        config = Config(sip=SipConfig(domains=["example.com"]), state=StateConfig(state))
        services = StageServices(clock=self.clock, local=self.services.local, config=config)
        store = SQLiteCredentialStore.in_state_directory(state)
        store.add("alice", REALM, "secret")
        store.close()

        first = build_digest_auth_stage({}, services)
        self.assertIs(first.memory, first.portal.checkers[next(iter(first.portal.checkers))].store)
        challenged = first.process_request(RequestContext(request(), FLOW, services))
        strong = answer(challenged, request(), algorithm="SHA-512-256")
        result = first.process_request(RequestContext(strong, FLOW, services))
        assert isinstance(result, Deferred)
        self.assertEqual(self.successResultOf(result), Continue())
        first.memory.close()  # type: ignore[attr-defined]

        second = build_digest_auth_stage({}, services)
        self.addCleanup(second.memory.close)  # type: ignore[attr-defined]
        offered = challenges(second.process_request(RequestContext(request(), FLOW, services)))
        self.assertEqual([c.algorithm for c in offered], ["SHA-512-256"])
        self.assertTrue(os.path.exists(os.path.join(state, DATABASE_NAME)))


class BuildTests(SynchronousTestCase):
    """Tests for L{build_digest_auth_stage} and the plugin."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.state = os.path.abspath(self.mktemp())
        self.config = Config(
            sip=SipConfig(domains=["example.com", "example.org"]), state=StateConfig(self.state)
        )
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity(["example.com", "example.org"], []),
            config=self.config,
        )

    def close(self, stage: DigestAuthStage) -> None:
        for checker in stage.portal.checkers.values():
            self.addCleanup(checker.store.close)

    def test_plugin(self) -> None:
        """The digest-auth stage factory is found among the installed plugins."""
        factory = stage_factories()["digest-auth"]
        stage = factory.build_stage({}, self.services)
        self.close(stage)
        self.assertIsInstance(stage, DigestAuthStage)
        error = self.assertRaises(ConfigError, factory.build_stage, {"relm": "x"}, self.services)
        self.assertIn("pipeline.options.digest-auth: unknown option 'relm'", str(error))

    def test_defaults(self) -> None:
        """
        By default: the first domain as realm, all three algorithms, a
        300-second nonce lifetime, and the SQLite store and nonce secret
        of the state directory.
        """
        stage = build_digest_auth_stage({}, self.services)
        self.close(stage)
        self.assertEqual((stage.realm, stage.algorithms), ("example.com", ALL))
        self.assertEqual(stage.nonces.lifetime, 300.0)
        self.assertTrue(stage.require_for_our_domains)
        self.assertEqual(
            sorted(n for n in os.listdir(self.state) if not n.endswith(("-wal", "-shm"))),
            sorted([DATABASE_NAME, SECRET_NAME]),
        )

    def test_options(self) -> None:
        """Options set the realm, the nonce lifetime and the algorithms."""
        stage = build_digest_auth_stage(
            {"realm": "sip.example.com", "nonce_lifetime": 60, "algorithms": ["MD5", "SHA-256"]},
            self.services,
        )
        self.close(stage)
        self.assertEqual(
            (stage.realm, stage.nonces.lifetime, stage.algorithms),
            ("sip.example.com", 60.0, ("SHA-256", "MD5")),
        )

    def test_bad_option(self) -> None:
        """A bad option value is a L{ConfigError} naming the option."""
        error = self.assertRaises(
            ConfigError, build_digest_auth_stage, {"nonce_lifetime": 0}, self.services
        )
        self.assertIn("pipeline.options.digest-auth.nonce_lifetime:", str(error))

    def test_auth_section(self) -> None:
        """An C{[auth]} section on the configuration gives the defaults; options win."""
        from sipedge.auth import AuthConfig

        config = attrs.evolve(
            self.config,
            auth=AuthConfig(realm="r.example", nonce_lifetime=30, require_for_our_domains=False),
        )
        services = StageServices(clock=self.clock, local=self.services.local, config=config)
        stage = build_digest_auth_stage({"nonce_lifetime": 45}, services)
        self.close(stage)
        self.assertEqual(
            (stage.realm, stage.nonces.lifetime, stage.require_for_our_domains),
            ("r.example", 45.0, False),
        )
        # The plugin hands the stage its own typed section, [auth].
        stage = stage_factories()["digest-auth"].build_stage({}, services)
        self.close(stage)
        self.assertEqual(
            (stage.realm, stage.nonces.lifetime, stage.require_for_our_domains),
            ("r.example", 30.0, False),
        )

    def test_services_provide(self) -> None:
        """A credential store and nonce source on the services are used as they are."""
        store = MemoryCredentialStore()
        nonces = NonceSource(SECRET, self.clock)
        services = StageServices(
            clock=self.clock, local=self.services.local, credentials=store, nonces=nonces
        )
        stage = build_digest_auth_stage({}, services)
        self.assertIs(stage.nonces, nonces)
        self.assertEqual([c.store for c in stage.portal.checkers.values()], [store])
        self.assertEqual(stage.realm, "example.com")  # sorted domains without a config

    def test_no_state(self) -> None:
        """Without a configuration, and so a state directory, the stage cannot be built."""
        services = StageServices(clock=self.clock, local=self.services.local)
        error = self.assertRaises(ConfigError, build_digest_auth_stage, {}, services)
        self.assertIn("state directory", str(error))

    def test_works(self) -> None:
        """A built stage authenticates a user added to the state directory's store."""
        store = SQLiteCredentialStore.in_state_directory(self.state)
        store.add("alice", "example.com", "secret")
        store.close()
        stage = build_digest_auth_stage({}, self.services)
        self.close(stage)
        context = RequestContext(request(), FLOW, self.services)
        challenged = stage.process_request(context)
        answered = answer(challenged, request())
        result = stage.process_request(RequestContext(answered, FLOW, self.services))
        assert isinstance(result, Deferred)
        self.assertEqual(self.successResultOf(result), Continue())


class ChainTests(SynchronousTestCase):
    """The stage in a chain: route, digest-auth, responsibility, registrar."""

    def setUp(self) -> None:
        from sipedge.pipeline import RequestChain
        from sipedge.pipeline.stages import RegistrarStage, ResponsibilityStage
        from sipedge.proxy import Registrar
        from sipedge.store import MemoryLocationStore

        self.clock = Clock()
        self.clock.advance(5000)
        credentials = MemoryCredentialStore()
        credentials.add("alice", REALM, "secret")
        self.location = MemoryLocationStore()
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity(["example.com"], [("UDP", PROXY, 5060)]),
            location=self.location,
            registrar=Registrar(self.location, self.clock),
        )
        stage = DigestAuthStage(make_portal(credentials), NonceSource(SECRET, self.clock), REALM)
        self.chain = RequestChain([stage, ResponsibilityStage(), RegistrarStage()])
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def run_chain(self, req: Request) -> Any:
        result = self.chain.run(RequestContext(req, FLOW, self.services))
        if isinstance(result, Deferred):
            return self.successResultOf(result)
        return result

    def test_register(self) -> None:
        """
        A REGISTER is challenged with 401; answered, the registrar takes
        it (200) and the binding is stored.
        """
        req = request(
            "REGISTER",
            "sip:example.com",
            to="sip:alice@example.com",
            fields=(f"Contact: <sip:alice@{SOURCE}:5060>", "Expires: 600"),
        )
        challenged = self.run_chain(req)
        self.assertEqual(challenged.status, 401)
        result = self.run_chain(answer(challenged, req))
        self.assertEqual(result.status, 200)
        bindings = self.successResultOf(self.location.lookup("sip:alice@example.com", 5000))
        self.assertEqual([b.contact for b in bindings], [f"sip:alice@{SOURCE}:5060"])


ACCOUNT = "alice"
HOME_IP = "198.51.100.7"


def bot(n: int) -> str:
    """The address of the C{n}th guessing source."""
    return f"203.0.113.{n}"


class StageAccountTests(SynchronousTestCase):
    """The digest-auth stage checks an account's credentials only where the guard lets it."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(5000)
        store = MemoryCredentialStore()
        store.add(ACCOUNT, REALM, "secret")
        self.security = Security(SecurityConfig(account_failures=3), clock=self.clock)
        self.addCleanup(self.security.close)
        self.checked = 0
        portal = make_portal(store)
        login = portal.login

        def counting_login(*args: Any) -> Any:
            self.checked += 1
            return login(*args)

        portal.login = counting_login  # type: ignore[method-assign,assignment]
        self.stage = DigestAuthStage(portal, NonceSource(SECRET, self.clock, 300), REALM)
        self.services = StageServices(
            clock=self.clock,
            local=LocalIdentity([REALM], [("UDP", "192.0.2.1", 5060)]),
            security=self.security,
        )
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def attempt(self, source: str, password: str) -> tuple[Any, dict[str, Any]]:
        """A challenge and an answer from C{source}: the result and the annotation."""
        flow = Flow("UDP", "192.0.2.1", 5060, source, 5060)
        req: Request = request()
        challenge = self.stage.process_request(RequestContext(req, flow, self.services))
        context = RequestContext(answer(challenge, req, password=password), flow, self.services)
        result: Any = self.stage.process_request(context)
        if isinstance(result, Deferred):
            result = self.successResultOf(result)
        return result, context.annotations["digest-auth"]

    def test_refused_unchecked(self) -> None:
        """
        Past the budget, an unknown source's credentials, even right ones,
        get 403 without a check, annotated C{refused} and logged with the
        user and the source; the account's known source still authenticates.
        """
        self.attempt(HOME_IP, "secret")
        for n in range(3):
            result, note = self.attempt(bot(n), "guess")
            self.assertEqual((result.status, note["result"]), (407, "failed"))
        self.assertEqual(self.checked, 4)
        events = capture_log(self)
        result, note = self.attempt(bot(9), "secret")
        self.assertEqual((result.status, note["result"], note["user"]), (403, "refused", ACCOUNT))
        self.assertEqual(self.checked, 4)
        [event] = [e for e in events if e.get("result") == "refused"]
        self.assertEqual((event["user"], event["source"]), (ACCOUNT, bot(9)))
        self.assertEqual(self.security.stats["account_refused"], 1)
        result, note = self.attempt(HOME_IP, "secret")
        self.assertEqual(note["result"], "ok")

    def test_right_password_takes_no_place(self) -> None:
        """
        Each check from an unknown source is counted against the account in
        advance; a right password takes its place back, even when the
        request is then challenged again for a stale nonce (no failure,
        but no known source either).
        """
        for n in range(2):
            self.attempt(bot(n), "guess")
        flow = Flow("UDP", "192.0.2.1", 5060, bot(5), 5060)
        req: Request = request()
        challenge = self.stage.process_request(RequestContext(req, flow, self.services))
        self.clock.advance(300)  # the nonce's lifetime
        context = RequestContext(answer(challenge, req), flow, self.services)
        result: Any = self.successResultOf(self.stage.process_request(context))  # type: ignore[arg-type]
        self.assertEqual((result.status, context.annotations["digest-auth"]["reason"]),
                         (407, "stale nonce"))
        self.assertFalse(self.security.accounts.is_locked(ACCOUNT, self.clock.seconds()))
        checked = self.checked
        result, note = self.attempt(bot(6), "guess")
        self.assertEqual((note["result"], self.checked), ("failed", checked + 1))

    def test_checks_under_way(self) -> None:
        """
        With the credential store answering later, a guess arriving while
        another one is being checked does not get the budget's last place
        too: it is refused unchecked.
        """
        later: list[tuple[Deferred[Any], tuple[Any, ...]]] = []
        login = self.stage.portal.login

        def slow_login(*args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            later.append((d, args))
            return d

        self.stage.portal.login = slow_login
        results: list[Any] = []
        for n in (1, 2, 3, 4):
            flow = Flow("UDP", "192.0.2.1", 5060, bot(n), 5060)
            req: Request = request()
            challenge = self.stage.process_request(RequestContext(req, flow, self.services))
            context = RequestContext(answer(challenge, req, password="guess"), flow, self.services)
            results.append(self.stage.process_request(context))
        self.assertEqual(len(later), 3)
        self.assertEqual(results[3].status, 403)
        for d, args in later:
            login(*args).chainDeferred(d)
        self.assertEqual(
            [self.successResultOf(r).status for r in results[:3]],
            [407, 407, 407],
        )
        self.assertEqual(self.security.stats["account_locks"], 1)

    def test_refusal_is_an_offence(self) -> None:
        """
        A refusal counts as an auth-failure offence of its source: the
        per-source bans still apply.
        """
        for n in range(3):
            self.attempt(bot(n), "guess")
        before = self.security.stats["offences_auth_failure"]
        self.attempt(bot(9), "guess")
        self.assertEqual(self.security.stats["offences_auth_failure"], before + 1)

    def test_monitor_sees_refusals(self) -> None:
        """
        The monitor counts a refusal as a failed outcome of the user and of
        the source: with one sample judged, both trigger the failure ratio.
        """
        monitor = Monitor(
            MonitorConfig(min_samples=1, auth_failure_ratio_action="log"),
            clock=self.clock,
            security=self.security,
        )
        for n in range(3):
            self.attempt(bot(n), "guess")
        flow = Flow("UDP", "192.0.2.1", 5060, bot(9), 5060)
        context = RequestContext(request(), flow, self.services)
        context.annotations["digest-auth"] = {
            "result": "refused", "reason": "x", "source": bot(9), "user": ACCOUNT
        }
        monitor.request_decided(context, Respond(403))
        self.assertEqual(self.security.stats["monitor_auth_failure_ratio"], 2)
