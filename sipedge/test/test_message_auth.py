# -*- test-case-name: sipedge.test.test_message_auth -*-
"""Tests for L{sipedge.message._auth}."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sipedge.error import MessageParseError
from sipedge.message import (
    AuthenticationInfo,
    AuthHeader,
    DigestChallenge,
    DigestCredentials,
    parse_auth_header,
    parse_authentication_info,
    quote_text,
)
from sipedge.test.strategies import tokens

SIPISH = st.text(
    alphabet='Digest realm="nonce",=qop auth-int\\ \t\r\nusername*uri:@response nc=0 ;',
    max_size=80,
)
# Any code point but CR and LF, lone surrogates included.
_QUOTABLE = st.text(
    alphabet=st.characters(exclude_categories=(), exclude_characters="\r\n"), max_size=12
)
_TOKEN68_ALPHABET = "ABCXYZabcxyz0189-._~+/"

# RFC 3261 22.4 / 25.1 style examples.
CHALLENGE = (
    'Digest realm="atlanta.com", domain="sip:ss1.carrier.com", qop="auth", '
    'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
)
CREDENTIALS = (
    'Digest username="bob", realm="biloxi.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", '
    'qop=auth, nc=00000001, cnonce="0a4f113b", '
    'response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def _auth_params() -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    """auth-params with token and quoted-string values, raw."""
    return st.lists(
        st.tuples(tokens(max_size=10), tokens() | _QUOTABLE.map(quote_text)),
        min_size=1,
        max_size=5,
    ).map(tuple)


def auth_headers() -> st.SearchStrategy[AuthHeader]:
    """L{AuthHeader}s: auth-params, token68 (not Digest), or a bare scheme."""
    return st.one_of(
        st.builds(AuthHeader, tokens(), _auth_params()),
        st.builds(
            lambda scheme, chars, pad: AuthHeader(scheme, (), chars + "=" * pad),
            tokens().filter(lambda s: s.lower() != "digest"),
            st.text(alphabet=_TOKEN68_ALPHABET, min_size=1, max_size=20),
            st.integers(0, 2),
        ),
        st.builds(AuthHeader, tokens()),
    )


def _extensions(known: set[str]) -> st.SearchStrategy[tuple[tuple[str, str], ...]]:
    return st.lists(
        st.tuples(
            tokens(max_size=10).filter(lambda n: n.lower() not in known),
            tokens() | _QUOTABLE.map(quote_text),
        ),
        max_size=3,
        unique_by=lambda p: p[0].lower(),
    ).map(tuple)


_CHALLENGE_KNOWN = {
    "realm",
    "domain",
    "nonce",
    "opaque",
    "stale",
    "algorithm",
    "qop",
    "charset",
    "userhash",
}
_CREDENTIALS_KNOWN = {
    "username",
    "username*",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
    "userhash",
}


def challenges() -> st.SearchStrategy[DigestChallenge]:
    """L{DigestChallenge}s with every field set or not."""
    return st.builds(
        DigestChallenge,
        realm=_QUOTABLE,
        nonce=_QUOTABLE,
        opaque=st.none() | _QUOTABLE,
        algorithm=st.none() | st.sampled_from(["MD5", "MD5-sess", "SHA-256", "SHA-512-256"]),
        qop=st.lists(st.sampled_from(["auth", "auth-int"]) | tokens(), max_size=3).map(tuple),
        stale=st.booleans(),
        domain=st.lists(tokens().map(lambda t: "sip:" + t), max_size=3).map(tuple),
        userhash=st.booleans(),
        charset=st.none() | st.just("UTF-8"),
        params=_extensions(_CHALLENGE_KNOWN),
    )


@st.composite
def credentials(draw: st.DrawFn) -> DigestCredentials:
    """L{DigestCredentials}, with cnonce and nc whenever there is a qop."""
    qop = draw(st.none() | st.sampled_from(["auth", "auth-int"]))
    nc = draw(st.text(alphabet="0123456789abcdef", min_size=8, max_size=8))
    return DigestCredentials(
        username=draw(_QUOTABLE),
        realm=draw(_QUOTABLE),
        nonce=draw(_QUOTABLE),
        uri=draw(_QUOTABLE),
        response=draw(_QUOTABLE),
        algorithm=draw(st.none() | tokens()),
        cnonce=draw(_QUOTABLE) if qop else draw(st.none() | _QUOTABLE),
        opaque=draw(st.none() | _QUOTABLE),
        qop=qop,
        nc=nc if qop else draw(st.none() | st.just(nc)),
        userhash=draw(st.booleans()),
        params=draw(_extensions(_CREDENTIALS_KNOWN)),
    )


class ParseAuthHeaderTests(SynchronousTestCase):
    """Tests for L{parse_auth_header} and L{AuthHeader}."""

    def test_params_kept_raw(self) -> None:
        """
        If the value is a Digest challenge, L{parse_auth_header} keeps the
        scheme and every parameter raw and in order, and C{str()} gives the
        text back.
        """
        header = parse_auth_header(CHALLENGE)
        self.assertEqual(header.scheme, "Digest")
        self.assertTrue(header.is_digest)
        self.assertEqual(
            header.params,
            (
                ("realm", '"atlanta.com"'),
                ("domain", '"sip:ss1.carrier.com"'),
                ("qop", '"auth"'),
                ("nonce", '"f84f1cec41e6cbe5aea9c8e88d359"'),
                ("opaque", '""'),
                ("stale", "FALSE"),
                ("algorithm", "MD5"),
            ),
        )
        self.assertEqual(header.param("REALM"), "atlanta.com")
        self.assertIsNone(header.param("nope"))
        self.assertEqual(str(header), CHALLENGE)

    def test_lws(self) -> None:
        """If there is LWS around C{=} and C{,}, even folded, it is skipped."""
        header = parse_auth_header(' Digest  realm = "a" ,\r\n nonce= "b",qop=auth ')
        self.assertEqual(header.params, (("realm", '"a"'), ("nonce", '"b"'), ("qop", "auth")))
        self.assertEqual(str(header), 'Digest realm="a", nonce="b", qop=auth')

    def test_quoted_pairs_and_commas(self) -> None:
        """If a quoted value holds C{,}, C{=} or quoted-pairs, it stays one value."""
        header = parse_auth_header('Digest realm="a, b=\\"c\\"", nonce="n"')
        self.assertEqual(header.param("realm"), 'a, b="c"')
        self.assertEqual(header.param("nonce"), "n")

    def test_other_scheme(self) -> None:
        """If the scheme is not Digest, its auth-params are kept raw."""
        header = parse_auth_header('Bearer realm="example", error="invalid_token"')
        self.assertEqual(header.scheme, "Bearer")
        self.assertFalse(header.is_digest)
        self.assertEqual(header.param("error"), "invalid_token")

    def test_token68(self) -> None:
        """If a scheme other than Digest has a token68 (RFC 7235 2.1), it is kept."""
        header = parse_auth_header("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        self.assertEqual(header, AuthHeader("Basic", (), "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="))
        self.assertEqual(str(header), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")

    def test_bare_scheme(self) -> None:
        """If the value is only a scheme, it has no parameters."""
        self.assertEqual(parse_auth_header("Negotiate"), AuthHeader("Negotiate"))
        self.assertEqual(str(AuthHeader("Negotiate")), "Negotiate")

    def test_bad(self) -> None:
        """If the value is malformed, L{parse_auth_header} raises."""
        for text in [
            "",
            "   ",
            '"Digest" realm="a"',
            'Digest realm="a",, nonce="b"',
            'Digest realm="a", nonce="b",',
            'Digest ,realm="a"',
            'Digest realm="a" nonce="b"',
            "Digest realm",
            "Digest realm=",
            'Digest realm="a',
            'Digest realm="a\x01"',
            "Digest realm=a b",
            "Digest realm=<a>",
            'Digest realm="a"; nonce="b"',
            "Digest QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            'Digest realm="a", Basic realm="b"',
            "Basic abc def",
            "Basic ==abc",
        ]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_auth_header, text)

    @given(auth_headers())
    def test_round_trip(self, header: AuthHeader) -> None:
        """If an L{AuthHeader} is formatted, L{parse_auth_header} gives it back."""
        self.assertEqual(parse_auth_header(str(header)), header)

    @given(st.text() | SIPISH)
    def test_only_parse_errors(self, text: str) -> None:
        """
        If any text is parsed and converted, only L{MessageParseError} is
        ever raised.
        """
        for candidate in (text, "Digest " + text):
            try:
                header = parse_auth_header(candidate)
            except MessageParseError:
                continue
            str(header)
            header.param("realm")
            for convert in (header.as_challenge, header.as_credentials):
                try:
                    str(convert())
                except MessageParseError:
                    pass
        try:
            str(parse_authentication_info(text))
        except MessageParseError:
            pass

    @given(_QUOTABLE | st.text(alphabet=st.characters(exclude_categories=())))
    def test_only_parse_errors_surrogates(self, text: str) -> None:
        """If values hold lone surrogates, only L{MessageParseError} is raised."""
        for candidate in (
            f'Digest realm="{text}", nonce="{text}"',
            f"Digest username*={text}, realm=a, nonce=b, uri=c, response=d",
            f"Digest username=a, realm=a, nonce=b, uri=c, response=d, nc={text}",
        ):
            try:
                header = parse_auth_header(candidate)
                str(
                    header.as_challenge()
                    if "username" not in candidate
                    else header.as_credentials()
                )
            except MessageParseError:
                pass


class DigestChallengeTests(SynchronousTestCase):
    """Tests for L{AuthHeader.as_challenge} and L{DigestChallenge}."""

    def test_fields(self) -> None:
        """If a Digest challenge is converted, every field is unquoted and typed."""
        challenge = parse_auth_header(CHALLENGE).as_challenge()
        self.assertEqual(challenge.realm, "atlanta.com")
        self.assertEqual(challenge.nonce, "f84f1cec41e6cbe5aea9c8e88d359")
        self.assertEqual(challenge.opaque, "")
        self.assertEqual(challenge.algorithm, "MD5")
        self.assertEqual(challenge.qop, ("auth",))
        self.assertIs(challenge.stale, False)
        self.assertEqual(challenge.domain, ("sip:ss1.carrier.com",))
        self.assertIs(challenge.userhash, False)
        self.assertIsNone(challenge.charset)
        self.assertEqual(len(challenge.params), 7)
        self.assertEqual(challenge.extensions, ())

    def test_rfc7616(self) -> None:
        """
        If a challenge has the RFC 7616 / RFC 8760 fields (SHA-256, qop
        list, charset, userhash, stale), they are parsed.
        """
        challenge = parse_auth_header(
            'Digest realm="http-auth@example.org", qop="auth, auth-int", '
            "algorithm=SHA-256, "
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", '
            'charset=UTF-8, userhash=true, stale=TRUE, domain="sip:a.example sip:b.example"'
        ).as_challenge()
        self.assertEqual(challenge.qop, ("auth", "auth-int"))
        self.assertEqual(challenge.algorithm, "SHA-256")
        self.assertEqual(challenge.charset, "UTF-8")
        self.assertIs(challenge.userhash, True)
        self.assertIs(challenge.stale, True)
        self.assertEqual(challenge.domain, ("sip:a.example", "sip:b.example"))

    def test_format(self) -> None:
        """
        If a challenge is formatted, realm, domain, nonce, opaque and qop are
        quoted, stale, algorithm, charset and userhash are tokens, and the
        extensions follow.
        """
        challenge = DigestChallenge(
            realm='a "b"',
            nonce="n",
            opaque="o",
            algorithm="SHA-256",
            qop=("auth", "auth-int"),
            stale=True,
            domain=("sip:a", "sip:b"),
            userhash=True,
            charset="UTF-8",
            params=(("realm", "ignored"), ("x-ext", '"1"')),
        )
        self.assertEqual(
            str(challenge),
            'Digest realm="a \\"b\\"", domain="sip:a sip:b", nonce="n", opaque="o", '
            'stale=true, algorithm=SHA-256, qop="auth,auth-int", charset=UTF-8, '
            'userhash=true, x-ext="1"',
        )
        self.assertEqual(parse_auth_header(str(challenge)).as_challenge(), challenge)
        self.assertEqual(str(DigestChallenge(realm="r", nonce="n")), 'Digest realm="r", nonce="n"')

    def test_equality_ignores_known_raw_params(self) -> None:
        """
        If two challenges differ only in the raw form of fields they have,
        they are equal; if their extensions differ, they are not.
        """
        a = parse_auth_header('Digest realm=r, nonce="n", x=1').as_challenge()
        b = DigestChallenge(realm="r", nonce="n", params=(("X", "1"),))
        self.assertEqual(a, b)
        self.assertEqual(hash(a), hash(b))
        self.assertNotEqual(a, DigestChallenge(realm="r", nonce="n"))

    def test_missing(self) -> None:
        """If realm or nonce is missing, L{AuthHeader.as_challenge} raises."""
        for text in ['Digest realm="r"', 'Digest nonce="n"', "Digest x=1"]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_auth_header(text).as_challenge)

    def test_bad(self) -> None:
        """
        If a field is malformed, appears twice, or the scheme is not Digest,
        L{AuthHeader.as_challenge} raises.
        """
        for text in [
            'Digest realm="r", nonce="n", stale=maybe',
            'Digest realm="r", nonce="n", userhash=1',
            'Digest realm="r", nonce="n", qop=""',
            'Digest realm="r", nonce="n", qop="auth,,auth-int"',
            'Digest realm="r", nonce="n", qop="a b"',
            'Digest realm="r", nonce="n", algorithm="MD 5"',
            'Digest realm="r", nonce="n", REALM="s"',
            'Basic realm="r", nonce="n"',
        ]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_auth_header(text).as_challenge)
        self.assertRaises(MessageParseError, AuthHeader("Basic", (), "abc").as_challenge)

    @given(challenges())
    def test_round_trip(self, challenge: DigestChallenge) -> None:
        """If a challenge is formatted, parsing and converting gives it back."""
        self.assertEqual(parse_auth_header(str(challenge)).as_challenge(), challenge)


class DigestCredentialsTests(SynchronousTestCase):
    """Tests for L{AuthHeader.as_credentials} and L{DigestCredentials}."""

    def test_fields(self) -> None:
        """If Digest credentials are converted, every field is unquoted."""
        creds = parse_auth_header(CREDENTIALS).as_credentials()
        self.assertEqual(creds.username, "bob")
        self.assertEqual(creds.realm, "biloxi.com")
        self.assertEqual(creds.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093")
        self.assertEqual(creds.uri, "sip:bob@biloxi.com")
        self.assertEqual(creds.response, "6629fae49393a05397450978507c4ef1")
        self.assertEqual(creds.qop, "auth")
        self.assertEqual(creds.nc, "00000001")
        self.assertEqual(creds.nonce_count, 1)
        self.assertEqual(creds.cnonce, "0a4f113b")
        self.assertEqual(creds.opaque, "5ccc069c403ebaf9f0171e9517f40e41")
        self.assertIsNone(creds.algorithm)
        self.assertIs(creds.userhash, False)

    def test_format(self) -> None:
        """
        If credentials are formatted, username, realm, nonce, uri, response,
        cnonce and opaque are quoted; algorithm, qop, nc and userhash are
        tokens.
        """
        creds = parse_auth_header(CREDENTIALS).as_credentials()
        self.assertEqual(
            str(creds),
            'Digest username="bob", realm="biloxi.com", '
            'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:bob@biloxi.com", '
            'response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", '
            'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001',
        )
        self.assertEqual(str(creds.to_header("digest")).split(" ")[0], "digest")

    def test_sha256_response(self) -> None:
        """If the response is 64 hex digits (RFC 8760 SHA-256), it is accepted."""
        creds = parse_auth_header(
            'Digest username="bob", realm="r", nonce="n", uri="sip:r", '
            f'response="{"a" * 64}", algorithm=SHA-256, userhash=true'
        ).as_credentials()
        self.assertEqual(creds.response, "a" * 64)
        self.assertEqual(creds.algorithm, "SHA-256")
        self.assertIs(creds.userhash, True)

    def test_username_star(self) -> None:
        """If C{username*} is sent (RFC 7616 3.4.4), it is decoded into the username."""
        creds = parse_auth_header(
            'Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n%20Doe, realm="r", nonce="n", '
            'uri="/", response="x"'
        ).as_credentials()
        self.assertEqual(creds.username, "J\u00e4s\u00f8n Doe")

    def test_missing(self) -> None:
        """
        If username, realm, nonce, uri or response is missing,
        L{AuthHeader.as_credentials} raises.
        """
        fields = ['username="u"', 'realm="r"', 'nonce="n"', 'uri="sip:r"', 'response="x"']
        for i in range(len(fields)):
            text = "Digest " + ", ".join(fields[:i] + fields[i + 1 :])
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_auth_header(text).as_credentials)

    def test_bad(self) -> None:
        """
        If nc is not 8 hex digits, qop is not auth or auth-int, qop comes
        without cnonce and nc, a field appears twice, username and username*
        are both sent, or username* is malformed, L{AuthHeader.as_credentials}
        raises.
        """
        base = 'Digest username="u", realm="r", nonce="n", uri="sip:r", response="x"'
        for extra in [
            ', qop=auth, cnonce="c", nc=1',
            ', qop=auth, cnonce="c", nc=0000000g',
            ', qop=auth, cnonce="c", nc=000000001',
            ', qop=auth-conf, cnonce="c", nc=00000001',
            ", qop=auth",
            ", qop=auth, nc=00000001",
            ', qop=auth, cnonce="c"',
            ', nonce="m"',
            ', Username="v"',
            ", username*=UTF-8''x",
            ", userhash=yes",
        ]:
            with self.subTest(extra=extra):
                self.assertRaises(MessageParseError, parse_auth_header(base + extra).as_credentials)
        for star in ["x", "UTF-8'x", "UTF-8''%C3", "KOI8-R''x", "UTF-8''a%2"]:
            text = f'Digest username*={star}, realm="r", nonce="n", uri="sip:r", response="x"'
            with self.subTest(star=star):
                self.assertRaises(MessageParseError, parse_auth_header(text).as_credentials)
        self.assertRaises(MessageParseError, parse_auth_header("Basic abc").as_credentials)

    @given(credentials())
    def test_round_trip(self, creds: DigestCredentials) -> None:
        """If credentials are formatted, parsing and converting gives them back."""
        self.assertEqual(parse_auth_header(str(creds)).as_credentials(), creds)


class AuthenticationInfoTests(SynchronousTestCase):
    """Tests for L{parse_authentication_info} and L{AuthenticationInfo}."""

    def test_parse(self) -> None:
        """If the value is an ainfo list (RFC 3261 20.6), every field is parsed."""
        info = parse_authentication_info(
            'nextnonce="47364c23432d2e131a5fb210812c", qop=auth, '
            'rspauth="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", nc=00000001'
        )
        self.assertEqual(info.nextnonce, "47364c23432d2e131a5fb210812c")
        self.assertEqual(info.qop, "auth")
        self.assertEqual(info.rspauth, "6629fae49393a05397450978507c4ef1")
        self.assertEqual(info.cnonce, "0a4f113b")
        self.assertEqual(info.nc, "00000001")
        self.assertEqual(
            str(info),
            'nextnonce="47364c23432d2e131a5fb210812c", qop=auth, '
            'rspauth="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", nc=00000001',
        )

    def test_bad(self) -> None:
        """If the value is empty or malformed, L{parse_authentication_info} raises."""
        for text in [
            "",
            "nextnonce",
            'nextnonce="a",',
            "nc=1",
            "qop=auth-conf",
            'nextnonce="a", nextnonce="b"',
            'Digest nextnonce="a"',
        ]:
            with self.subTest(text=text):
                self.assertRaises(MessageParseError, parse_authentication_info, text)

    @given(
        st.builds(
            AuthenticationInfo,
            nextnonce=st.none() | _QUOTABLE,
            qop=st.none() | st.sampled_from(["auth", "auth-int"]),
            rspauth=st.none() | st.text(alphabet="0123456789abcdef", max_size=64),
            cnonce=st.none() | _QUOTABLE,
            nc=st.none() | st.text(alphabet="0123456789abcdef", min_size=8, max_size=8),
            params=_extensions({"nextnonce", "qop", "rspauth", "cnonce", "nc"}),
        ).filter(lambda info: str(info) != "")
    )
    def test_round_trip(self, info: AuthenticationInfo) -> None:
        """If an L{AuthenticationInfo} is formatted, it parses back."""
        self.assertEqual(parse_authentication_info(str(info)), info)
