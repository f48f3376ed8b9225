# -*- test-case-name: sipedge.test.test_auth -*-
"""
Tests for L{sipedge.auth}: the digest math, nonces, credentials through
C{twisted.cred}, and the credential stores.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Callable
from itertools import count
from typing import TYPE_CHECKING, Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from sipedge.auth import (
    ALGORITHMS,
    DATABASE_NAME,
    DEFAULT_ALGORITHMS,
    HASH_ALGORITHMS,
    SECRET_NAME,
    DigestCredentialsChecker,
    ICredentialStore,
    INonceSource,
    ISipDigestCredentials,
    ISipUser,
    MemoryCredentialStore,
    NonceSource,
    NonceStatus,
    SipDigestCredentials,
    SipRealm,
    SipUser,
    SQLiteCredentialStore,
    StoredUser,
    UnsupportedAlgorithm,
    canonical_algorithm,
    ha1,
    hash_algorithm,
    load_secret,
    make_portal,
    response,
    responses_equal,
)
from sipedge.auth._digest import digest_hex, ha2, session_ha1
from sipedge.error import ConfigError
from sipedge.message import DigestCredentials, parse_auth_header

SECRET = b"0123456789abcdef0123456789abcdef"

# RFC 7616 3.9.1 (the HTTP example: method GET, uri /dir/index.html).
RFC7616_REALM = "http-auth@example.org"
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"

# RFC 2617 3.5 (note the capital O in the password).
RFC2617_REALM = "testrealm@host.com"
RFC2617_NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"


def counter_random() -> Callable[[int], bytes]:
    """Deterministic "random" bytes: 0x01 0x01 ..., then 0x02 0x02 ..."""
    numbers = count(1)

    def random(n: int) -> bytes:
        return bytes([next(numbers) % 256]) * n

    return random


def credentials(
    algorithm: str | None = "MD5",
    *,
    username: str = "alice",
    realm: str = "example.com",
    password: str = "secret",
    method: str = "INVITE",
    uri: str = "sip:bob@example.com",
    nonce: str = "abcdef",
    qop: str | None = "auth",
    nc: str | None = "00000001",
    cnonce: str | None = "0a4f113b",
    body: bytes = b"",
) -> DigestCredentials:
    """Credentials a client that knows C{password} would send."""
    if qop is None:
        nc = None
        if not (algorithm or "").lower().endswith("-sess"):
            cnonce = None
    value = response(
        algorithm,
        ha1(algorithm, username, realm, password),
        method,
        uri,
        nonce,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        body=body,
    )
    return DigestCredentials(
        username=username,
        realm=realm,
        nonce=nonce,
        uri=uri,
        response=value,
        algorithm=algorithm,
        cnonce=cnonce,
        qop=qop,
        nc=nc,
    )


class DigestVectorTests(SynchronousTestCase):
    """The published examples, computed with L{sipedge.auth._digest}."""

    def test_rfc7616_md5(self) -> None:
        """RFC 7616 3.9.1, MD5: the response is 8ca523f5..."""
        self.assertEqual(
            response(
                "MD5",
                ha1("MD5", "Mufasa", RFC7616_REALM, "Circle of Life"),
                "GET",
                "/dir/index.html",
                RFC7616_NONCE,
                qop="auth",
                nc="00000001",
                cnonce=RFC7616_CNONCE,
            ),
            "8ca523f5e9506fed4657c9700eebdbec",
        )

    def test_rfc7616_sha256(self) -> None:
        """RFC 7616 3.9.1, SHA-256: the response is 753927fa..."""
        self.assertEqual(
            response(
                "SHA-256",
                ha1("SHA-256", "Mufasa", RFC7616_REALM, "Circle of Life"),
                "GET",
                "/dir/index.html",
                RFC7616_NONCE,
                qop="auth",
                nc="00000001",
                cnonce=RFC7616_CNONCE,
            ),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        )

    def test_rfc7616_parsed(self) -> None:
        """
        The RFC 7616 3.9.1 Authorization value, parsed, checks out with
        the password, and with the stored H(A1), and fails with another.
        """
        value = (
            'Digest username="Mufasa", realm="http-auth@example.org",'
            ' uri="/dir/index.html", algorithm=SHA-256,'
            f' nonce="{RFC7616_NONCE}", nc=00000001, cnonce="{RFC7616_CNONCE}", qop=auth,'
            ' response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",'
            ' opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
        )
        creds = SipDigestCredentials(parse_auth_header(value).as_credentials(), "GET")
        self.assertTrue(creds.checkPassword("Circle of Life"))
        self.assertTrue(creds.checkHash(ha1("SHA-256", "Mufasa", RFC7616_REALM, "Circle of Life")))
        self.assertFalse(creds.checkPassword("Circle Of Life"))

    def test_rfc2617(self) -> None:
        """RFC 2617 3.5: the response is 6629fae4..."""
        self.assertEqual(
            response(
                None,
                ha1(None, "Mufasa", RFC2617_REALM, "Circle Of Life"),
                "GET",
                "/dir/index.html",
                RFC2617_NONCE,
                qop="auth",
                nc="00000001",
                cnonce="0a4f113b",
            ),
            "6629fae49393a05397450978507c4ef1",
        )

    def test_sha512_256_primitive(self) -> None:
        """
        SHA-512-256 is SHA-512/256 (FIPS 180-4, its own initial values),
        not SHA-512 cut short: the NIST example for "abc".
        """
        self.assertIn("SHA-512-256", HASH_ALGORITHMS)
        self.assertEqual(
            digest_hex("SHA-512-256", "abc"),
            "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23",
        )

    def test_no_qop(self) -> None:
        """Without qop (RFC 2069), response = H(HA1:nonce:HA2)."""
        h1 = ha1("MD5", "Mufasa", RFC2617_REALM, "Circle Of Life")
        h2 = hashlib.md5(b"GET:/dir/index.html").hexdigest()
        expected = hashlib.md5(f"{h1}:{RFC2617_NONCE}:{h2}".encode()).hexdigest()
        self.assertEqual(response("MD5", h1, "GET", "/dir/index.html", RFC2617_NONCE), expected)

    def test_auth_int(self) -> None:
        """With qop auth-int, A2 ends with H(body)."""
        body = b"v=0\r\n"
        h2 = ha2("SHA-256", "INVITE", "sip:bob@example.com", "auth-int", body)
        inner = hashlib.sha256(body).hexdigest()
        self.assertEqual(
            h2, hashlib.sha256(f"INVITE:sip:bob@example.com:{inner}".encode()).hexdigest()
        )
        self.assertNotEqual(h2, ha2("SHA-256", "INVITE", "sip:bob@example.com", "auth", body))

    def test_sess(self) -> None:
        """
        For a -sess algorithm, H(A1) = H(H(user:realm:pass):nonce:cnonce),
        so the stored H(A1) of the base algorithm serves it.
        """
        h1 = ha1("SHA-256", "alice", "example.com", "pw")
        sess = session_ha1("SHA-256-sess", h1, "n", "c")
        self.assertEqual(sess, hashlib.sha256(f"{h1}:n:c".encode()).hexdigest())
        h2 = ha2("SHA-256", "REGISTER", "sip:example.com", "auth")
        expected = hashlib.sha256(f"{sess}:n:00000001:c:auth:{h2}".encode()).hexdigest()
        self.assertEqual(
            response(
                "SHA-256-sess",
                h1,
                "REGISTER",
                "sip:example.com",
                "n",
                qop="auth",
                nc="00000001",
                cnonce="c",
            ),
            expected,
        )

    def test_sess_needs_cnonce(self) -> None:
        """A -sess algorithm without cnonce cannot be computed."""
        self.assertRaises(ValueError, response, "MD5-sess", "00", "GET", "/", "n")

    def test_qop_needs_nc(self) -> None:
        """A qop without nc and cnonce, or an unknown qop, raises ValueError."""
        self.assertRaises(ValueError, response, "MD5", "00", "GET", "/", "n", qop="auth")
        self.assertRaises(
            ValueError, response, "MD5", "00", "GET", "/", "n", qop="x", nc="00000001", cnonce="c"
        )

    def test_algorithm_names(self) -> None:
        """
        Names are matched case-insensitively; no name is MD5; unknown names
        raise L{UnsupportedAlgorithm}.
        """
        self.assertEqual(canonical_algorithm("sha-512-256-SESS"), "SHA-512-256-sess")
        self.assertEqual(canonical_algorithm(None), "MD5")
        self.assertEqual(hash_algorithm("md5-sess"), "MD5")
        self.assertRaises(UnsupportedAlgorithm, canonical_algorithm, "SHA-1")
        self.assertEqual(
            ALGORITHMS,
            ("SHA-512-256", "SHA-512-256-sess", "SHA-256", "SHA-256-sess", "MD5", "MD5-sess"),
        )
        self.assertEqual(DEFAULT_ALGORITHMS, ("SHA-512-256", "SHA-256", "MD5"))

    def test_responses_equal(self) -> None:
        """Digests compare without regard to hex case; non-ASCII never matches."""
        self.assertTrue(responses_equal("abcdef", "ABCDEF"))
        self.assertFalse(responses_equal("abcdef", "abcdee"))
        self.assertFalse(responses_equal("abcdef", "abcdéf"))


_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters='"\\'),
    min_size=1,
    max_size=20,
)
_method = st.sampled_from(["INVITE", "REGISTER", "BYE", "MESSAGE", "OPTIONS"])
_uri = st.builds(
    lambda user, host: f"sip:{user}@{host}",
    st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
    st.from_regex(r"[a-z]{1,8}\.com", fullmatch=True),
)


class SipDigestCredentialsTests(SynchronousTestCase):
    """Tests for L{SipDigestCredentials}."""

    def test_interface(self) -> None:
        """L{SipDigestCredentials} provides L{ISipDigestCredentials}."""
        verifyObject(ISipDigestCredentials, SipDigestCredentials(credentials(), "INVITE"))

    @given(
        username=_text,
        realm=_text,
        password=_text,
        wrong=_text,
        method=_method,
        uri=_uri,
        nonce=st.from_regex(r"[A-Za-z0-9+/]{1,40}", fullmatch=True),
        algorithm=st.sampled_from(ALGORITHMS),
        qop=st.sampled_from([None, "auth", "auth-int"]),
        body=st.binary(max_size=40),
    )
    def test_password_and_hash_agree(
        self,
        username: str,
        realm: str,
        password: str,
        wrong: str,
        method: str,
        uri: str,
        nonce: str,
        algorithm: str,
        qop: str | None,
        body: bytes,
    ) -> None:
        """
        For any inputs and algorithm, C{checkPassword(password)} and
        C{checkHash(H(A1))} both accept the response a client computed, and
        both refuse another password.
        """
        creds = SipDigestCredentials(
            credentials(
                algorithm,
                username=username,
                realm=realm,
                password=password,
                method=method,
                uri=uri,
                nonce=nonce,
                qop=qop,
                body=body,
            ),
            method,
            body,
        )
        stored = ha1(hash_algorithm(algorithm), username, realm, password)
        self.assertTrue(creds.checkPassword(password))
        self.assertTrue(creds.checkHash(stored))
        self.assertTrue(creds.checkHash(stored.upper().encode("ascii")))
        if wrong != password:
            self.assertFalse(creds.checkPassword(wrong))
            self.assertFalse(creds.checkHash(ha1(algorithm, username, realm, wrong)))

    def test_method_matters(self) -> None:
        """A response made for another method does not check out (A2)."""
        creds = SipDigestCredentials(credentials(method="INVITE"), "BYE")
        self.assertFalse(creds.checkPassword("secret"))

    def test_body_matters_for_auth_int(self) -> None:
        """With qop auth-int, a changed body does not check out."""
        made = credentials("SHA-256", qop="auth-int", body=b"one")
        self.assertTrue(SipDigestCredentials(made, "INVITE", b"one").checkPassword("secret"))
        self.assertFalse(SipDigestCredentials(made, "INVITE", b"two").checkPassword("secret"))

    def test_attributes(self) -> None:
        """The algorithm is canonical, and its hash algorithm is without -sess."""
        creds = SipDigestCredentials(credentials("sha-256-sess"), "INVITE")
        self.assertEqual(
            (creds.username, creds.realm, creds.algorithm, creds.hash_algorithm),
            ("alice", "example.com", "SHA-256-sess", "SHA-256"),
        )
        self.assertEqual(SipDigestCredentials(credentials(None), "X").algorithm, "MD5")

    def test_unsupported(self) -> None:
        """An unknown algorithm raises L{UnsupportedAlgorithm}."""
        made = DigestCredentials(
            username="a", realm="r", nonce="n", uri="u", response="00", algorithm="SHA-1"
        )
        self.assertRaises(UnsupportedAlgorithm, SipDigestCredentials, made, "INVITE")

    def test_bad_hash(self) -> None:
        """A stored hash that is not ASCII never checks out."""
        creds = SipDigestCredentials(credentials(), "INVITE")
        self.assertFalse(creds.checkHash(b"\xff\xfe"))


class NonceSourceTests(SynchronousTestCase):
    """Tests for L{NonceSource}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.nonces = NonceSource(SECRET, self.clock, 300, random=counter_random())
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def test_interface(self) -> None:
        """L{NonceSource} provides L{INonceSource}."""
        verifyObject(INonceSource, self.nonces)

    def test_valid(self) -> None:
        """A nonce just issued is valid for its realm."""
        nonce = self.nonces.issue("example.com")
        self.assertEqual(self.nonces.validate(nonce, "example.com"), NonceStatus.VALID)

    def test_shape(self) -> None:
        """
        A nonce is 52 URL-safe base64 characters: the timestamp in
        milliseconds, 15 random bytes and a 16-byte MAC.
        """
        nonce = self.nonces.issue("example.com")
        self.assertRegex(nonce, r"\A[A-Za-z0-9_-]{52}\Z")
        raw = base64.urlsafe_b64decode(nonce)
        self.assertEqual(int.from_bytes(raw[:8], "big"), 1000_000)
        self.assertEqual(raw[8:23], b"\x01" * 15)
        self.assertNotEqual(self.nonces.issue("example.com"), nonce)

    def test_stale(self) -> None:
        """A nonce is valid until just before C{lifetime} seconds, then stale."""
        nonce = self.nonces.issue("example.com")
        self.clock.advance(299.999)
        self.assertEqual(self.nonces.validate(nonce, "example.com"), NonceStatus.VALID)
        self.clock.advance(0.001)
        self.assertEqual(self.nonces.validate(nonce, "example.com"), NonceStatus.STALE)

    def test_stale_after_lifetime(self) -> None:
        """After C{clock.advance(lifetime)} a nonce is stale."""
        nonce = self.nonces.issue("example.com")
        self.clock.advance(self.nonces.lifetime)
        self.assertEqual(self.nonces.validate(nonce, "example.com"), NonceStatus.STALE)

    def test_future(self) -> None:
        """A nonce from the future (our clock went back) is stale."""
        later = NonceSource(SECRET, Clock(), 300)
        later._clock.advance(2000)
        nonce = later.issue("example.com")
        self.assertEqual(self.nonces.validate(nonce, "example.com"), NonceStatus.STALE)

    def test_other_realm(self) -> None:
        """A nonce issued for another realm is invalid."""
        nonce = self.nonces.issue("example.com")
        self.assertEqual(self.nonces.validate(nonce, "example.org"), NonceStatus.INVALID)

    def test_other_secret(self) -> None:
        """A nonce made with another secret is invalid (a forgery)."""
        forger = NonceSource(b"x" * 32, self.clock, 300)
        nonce = forger.issue("example.com")
        self.assertEqual(self.nonces.validate(nonce, "example.com"), NonceStatus.INVALID)

    def test_tampered(self) -> None:
        """A nonce with any byte changed (its timestamp, say) is invalid."""
        nonce = self.nonces.issue("example.com")
        raw = bytearray(base64.urlsafe_b64decode(nonce))
        for i in range(len(raw)):
            changed = bytearray(raw)
            changed[i] ^= 0x01
            text = base64.urlsafe_b64encode(bytes(changed)).decode()
            self.assertEqual(
                self.nonces.validate(text, "example.com"), NonceStatus.INVALID, f"byte {i}"
            )

    def test_malformed(self) -> None:
        """Text that is not a nonce of ours is invalid."""
        for text in ("", "abc", "!" * 52, "A" * 51, "A" * 53, "Ä" * 52):
            self.assertEqual(self.nonces.validate(text, "example.com"), NonceStatus.INVALID)

    def test_counts(self) -> None:
        """Rising nonce counts are accepted; a count not above the highest is a replay."""
        nonce = self.nonces.issue("example.com")
        self.assertTrue(self.nonces.record_use(nonce, 1))
        self.assertFalse(self.nonces.record_use(nonce, 1))
        self.assertTrue(self.nonces.record_use(nonce, 3))
        self.assertFalse(self.nonces.record_use(nonce, 2))
        self.assertTrue(self.nonces.record_use(nonce, 4))

    def test_no_count_once(self) -> None:
        """Without a count (no qop, RFC 2069), a nonce is accepted once only."""
        nonce = self.nonces.issue("example.com")
        self.assertTrue(self.nonces.record_use(nonce, None))
        self.assertFalse(self.nonces.record_use(nonce, None))
        self.assertFalse(self.nonces.record_use(nonce, 0))

    def test_counts_per_nonce(self) -> None:
        """Each nonce has its own count."""
        one, two = self.nonces.issue("r"), self.nonces.issue("r")
        self.assertTrue(self.nonces.record_use(one, 1))
        self.assertTrue(self.nonces.record_use(two, 1))

    def test_record_malformed(self) -> None:
        """A malformed nonce is never recorded as used."""
        self.assertFalse(self.nonces.record_use("nonsense", 1))
        self.assertEqual(self.nonces.tracked, 0)

    def test_pruned_when_stale(self) -> None:
        """Counts of nonces past their lifetime are forgotten."""
        old = self.nonces.issue("r")
        self.nonces.record_use(old, 1)
        self.clock.advance(300)
        new = self.nonces.issue("r")
        self.nonces.record_use(new, 1)
        self.assertEqual(self.nonces.tracked, 1)
        self.assertEqual(self.nonces.validate(old, "r"), NonceStatus.STALE)

    def test_bounded(self) -> None:
        """
        At most C{max_tracked} nonces are tracked; once one is evicted,
        nonces issued no later than it that are not tracked count as used,
        so no replay slips through, while newer nonces still work.
        """
        nonces = NonceSource(SECRET, self.clock, 300, max_tracked=2)
        first = nonces.issue("r")
        self.clock.advance(1)
        second = nonces.issue("r")
        self.clock.advance(1)
        third = nonces.issue("r")
        unused = nonces.issue("r")
        self.assertTrue(nonces.record_use(first, 1))
        self.assertTrue(nonces.record_use(second, 1))
        self.assertTrue(nonces.record_use(third, 1))  # evicts first
        self.assertEqual(nonces.tracked, 2)
        self.assertFalse(nonces.record_use(first, 1))  # evicted: counts as used
        self.assertFalse(nonces.record_use(first, 2))
        self.assertTrue(nonces.record_use(unused, 1))  # evicts second; issued after it
        self.assertFalse(nonces.record_use(second, 2))
        self.assertTrue(nonces.record_use(third, 2))
        self.assertEqual(nonces.tracked, 2)

    def test_bad_arguments(self) -> None:
        """A short secret, a lifetime that is not positive or no room raise ValueError."""
        self.assertRaises(ValueError, NonceSource, b"short", self.clock)
        self.assertRaises(ValueError, NonceSource, SECRET, self.clock, 0)
        self.assertRaises(ValueError, NonceSource, SECRET, self.clock, max_tracked=0)


class SecretTests(SynchronousTestCase):
    """Tests for L{load_secret} and L{NonceSource.in_state_directory}."""

    def test_created_once(self) -> None:
        """
        The secret is created (mode 0600, in a new directory) once and read
        back afterwards, so nonces survive a restart.
        """
        state = self.mktemp()
        secret = load_secret(state)
        path = os.path.join(state, SECRET_NAME)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(len(secret), 32)
        self.assertEqual(load_secret(state), secret)
        self.assertEqual(os.listdir(state), [SECRET_NAME])
        clock = Clock()
        nonce = NonceSource.in_state_directory(state, clock).issue("r")
        restarted = NonceSource.in_state_directory(state, clock)
        self.assertEqual(restarted.validate(nonce, "r"), NonceStatus.VALID)

    def test_too_short(self) -> None:
        """A secret file that is too short is a L{ConfigError}."""
        state = self.mktemp()
        os.makedirs(state)
        with open(os.path.join(state, SECRET_NAME), "wb") as f:
            f.write(b"x")
        os.chmod(os.path.join(state, SECRET_NAME), 0o600)
        error = self.assertRaises(ConfigError, load_secret, state)
        self.assertIn("too short", str(error))

    def test_unreadable(self) -> None:
        """A state directory that cannot be made is a L{ConfigError}."""
        blocker = self.mktemp()
        with open(blocker, "w") as f:
            f.write("a file, not a directory")
        self.assertRaises(ConfigError, load_secret, os.path.join(blocker, "state"))


class CheckerTests(SynchronousTestCase):
    """Tests for L{DigestCredentialsChecker}, L{SipRealm} and L{make_portal}."""

    def setUp(self) -> None:
        self.store = MemoryCredentialStore()
        self.store.add("alice", "example.com", "secret")
        self.portal = make_portal(self.store)

    def test_interfaces(self) -> None:
        """The checker, realm and avatar provide their interfaces."""
        verifyClass(ICredentialsChecker, DigestCredentialsChecker)
        verifyClass(IRealm, SipRealm)
        verifyObject(ISipUser, SipUser("alice"))

    def test_login(self) -> None:
        """
        Right credentials log in through the portal as the L{SipUser} of
        that name, for every algorithm.
        """
        for algorithm in ALGORITHMS:
            creds = SipDigestCredentials(credentials(algorithm), "INVITE")
            iface, avatar, logout = self.successResultOf(self.portal.login(creds, None, ISipUser))
            self.assertIs(iface, ISipUser)
            self.assertEqual(avatar, SipUser("alice"))
            logout()

    def test_wrong_password(self) -> None:
        """Wrong credentials fail with L{UnauthorizedLogin}."""
        creds = SipDigestCredentials(credentials(password="guess"), "INVITE")
        self.failureResultOf(self.portal.login(creds, None, ISipUser), UnauthorizedLogin)

    def test_unknown_user(self) -> None:
        """An unknown user, or another realm, fails with L{UnauthorizedLogin}."""
        for made in (credentials(username="mallory"), credentials(realm="example.org")):
            creds = SipDigestCredentials(made, "INVITE")
            self.failureResultOf(self.portal.login(creds, None, ISipUser), UnauthorizedLogin)

    def test_missing_algorithm(self) -> None:
        """A user without an H(A1) for the response's algorithm cannot log in."""

        class Md5Only:
            def lookup(self, username: str, realm: str) -> object:
                return succeed({"MD5": ha1("MD5", username, realm, "secret")})

        portal = make_portal(Md5Only())
        good = SipDigestCredentials(credentials("MD5-sess"), "INVITE")
        self.successResultOf(portal.login(good, None, ISipUser))
        other = SipDigestCredentials(credentials("SHA-256"), "INVITE")
        self.failureResultOf(portal.login(other, None, ISipUser), UnauthorizedLogin)

    def test_other_interface(self) -> None:
        """L{SipRealm} gives only L{ISipUser} avatars."""
        self.assertRaises(NotImplementedError, SipRealm().requestAvatar, "alice", None, IRealm)
        self.assertEqual(SipRealm().requestAvatar(b"alice", None, ISipUser)[1], SipUser("alice"))


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class StoreTestsMixin(_TestCase):
    """Tests every credential store passes."""

    def make_store(self) -> Any:
        raise NotImplementedError

    def test_interface(self) -> None:
        """The store provides L{ICredentialStore}."""
        verifyObject(ICredentialStore, self.make_store())

    def test_add_lookup(self) -> None:
        """
        C{add} stores H(A1) for MD5, SHA-256 and SHA-512-256, never the
        password; C{lookup} gives them by algorithm.
        """
        store = self.make_store()
        self.assertTrue(store.add("alice", "example.com", "secret"))
        found = store.lookup("alice", "example.com")
        self.assertEqual(
            found,
            {
                a: ha1(a, "alice", "example.com", "secret")
                for a in ("MD5", "SHA-256", "SHA-512-256")
            },
        )
        self.assertEqual(store.lookup("alice", "example.org"), {})
        self.assertEqual(store.lookup("bob", "example.com"), {})

    def test_replace(self) -> None:
        """Adding a user again changes the password and says the user is not new."""
        store = self.make_store()
        store.add("alice", "example.com", "one")
        self.assertFalse(store.add("alice", "example.com", "two"))
        self.assertEqual(
            store.lookup("alice", "example.com")["MD5"], ha1("MD5", "alice", "example.com", "two")
        )

    def test_list(self) -> None:
        """C{list} gives users (no hashes) by realm and name, or of one realm."""
        store = self.make_store()
        store.add("bob", "example.com", "pw")
        store.add("alice", "example.com", "pw")
        store.add("carol", "a.example", "pw")
        algorithms = ("SHA-512-256", "SHA-256", "MD5")
        self.assertEqual(
            store.list(),
            [
                StoredUser("carol", "a.example", algorithms),
                StoredUser("alice", "example.com", algorithms),
                StoredUser("bob", "example.com", algorithms),
            ],
        )
        self.assertEqual([u.username for u in store.list("a.example")], ["carol"])

    def test_remove(self) -> None:
        """C{remove} forgets a user and says whether there was one."""
        store = self.make_store()
        store.add("alice", "example.com", "pw")
        self.assertTrue(store.remove("alice", "example.com"))
        self.assertFalse(store.remove("alice", "example.com"))
        self.assertEqual(store.lookup("alice", "example.com"), {})
        self.assertEqual(store.list(), [])

    def test_bad_values(self) -> None:
        """An empty or control-character name, realm or password raises ValueError."""
        store = self.make_store()
        for args in (
            ("", "r", "pw"),
            ("a\nb", "r", "pw"),
            ("a", "", "pw"),
            ("a", "r", ""),
            ("a\udcff", "r", "pw"),
            ("a", "r", "p\udcff"),
        ):
            self.assertRaises(ValueError, store.add, *args)
        self.assertRaises(TypeError, store.add, b"a", "r", "pw")

    def test_lookup_odd_names(self) -> None:
        """Looking up a name that could never be stored finds nothing."""
        self.assertEqual(self.make_store().lookup("a\udcff", "r"), {})


class MemoryCredentialStoreTests(StoreTestsMixin, SynchronousTestCase):
    """Tests for L{MemoryCredentialStore}."""

    def make_store(self) -> MemoryCredentialStore:
        return MemoryCredentialStore()


class SQLiteCredentialStoreTests(StoreTestsMixin, SynchronousTestCase):
    """Tests for L{SQLiteCredentialStore}."""

    def make_store(self) -> SQLiteCredentialStore:
        store = SQLiteCredentialStore.in_state_directory(self.mktemp())
        self.addCleanup(store.close)
        return store

    def test_persistence(self) -> None:
        """Users survive closing and reopening the file."""
        state = self.mktemp()
        store = SQLiteCredentialStore.in_state_directory(state)
        store.add("alice", "example.com", "secret")
        store.close()
        reopened = SQLiteCredentialStore.in_state_directory(state)
        self.addCleanup(reopened.close)
        self.assertEqual(
            reopened.lookup("alice", "example.com")["SHA-256"],
            ha1("SHA-256", "alice", "example.com", "secret"),
        )
        self.assertEqual(reopened.schema_version, 2)

    def test_private(self) -> None:
        """The database file is created mode 0600: its hashes are password equivalents."""
        state = self.mktemp()
        store = SQLiteCredentialStore.in_state_directory(state)
        self.addCleanup(store.close)
        mode = os.stat(os.path.join(state, DATABASE_NAME)).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o600)

    def test_no_passwords(self) -> None:
        """The password is nowhere in the file."""
        state = self.mktemp()
        store = SQLiteCredentialStore.in_state_directory(state)
        store.add("alice", "example.com", "very-secret-password")
        store.close()
        for name in os.listdir(state):
            with open(os.path.join(state, name), "rb") as f:
                self.assertNotIn(b"very-secret-password", f.read())

    def test_shared(self) -> None:
        """A second connection (the CLI next to the proxy) sees changes at once."""
        state = self.mktemp()
        proxy = SQLiteCredentialStore.in_state_directory(state)
        self.addCleanup(proxy.close)
        cli = SQLiteCredentialStore.in_state_directory(state)
        cli.add("alice", "example.com", "pw")
        cli.close()
        self.assertIn("MD5", proxy.lookup("alice", "example.com"))

    def test_newer_schema(self) -> None:
        """A file with a newer schema is refused with a L{ConfigError}."""
        path = self.mktemp()
        store = SQLiteCredentialStore(path)
        store._db.execute("UPDATE schema_version SET version = 99")
        store.close()
        error = self.assertRaises(ConfigError, SQLiteCredentialStore, path)
        self.assertIn("schema version 99", str(error))

    def test_not_a_database(self) -> None:
        """A file that is not SQLite is refused with a L{ConfigError}."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"this is not an SQLite database, not at all" * 100)
        self.assertRaises(ConfigError, SQLiteCredentialStore, path)

    def test_bad_directory(self) -> None:
        """A state directory that cannot be made is a L{ConfigError}."""
        blocker = self.mktemp()
        with open(blocker, "w") as f:
            f.write("a file")
        self.assertRaises(
            ConfigError, SQLiteCredentialStore.in_state_directory, os.path.join(blocker, "s")
        )
