# -*- test-case-name: sipedge.test.test_stage_digest_auth -*-
"""
The digest-auth stage: our users prove who they are (RFC 3261 22, RFC 7616,
RFC 8760).

Who must authenticate:
 - a REGISTER for one of our domains, always (else anyone could bind any of
   our AORs to their own phone), answered with 401 and WWW-Authenticate;
 - any other request whose From is in one of our domains (unless
   C{require_for_our_domains} is off), answered with 407 and
   Proxy-Authenticate. Requests from outside to our users pass unchallenged.
 - ACK and CANCEL never (RFC 3261 22.1: they cannot be resubmitted);
 - nor requests within a dialog set up through us (the route stage found
   our signed Record-Route, C{annotations["route"] == "dialog"}): the
   dialog's initial request was authenticated, and challenging a BYE only
   breaks clients that compute the digest URI differently.

A challenge offers the algorithms the claimed user (To of a REGISTER,
else From) may use, one header field each, all with C{qop="auth,auth-int"}
and the same fresh nonce: MD5 alone until that user has authenticated
with a stronger one or C{minimum_algorithm} is raised, then only those at
least as strong, SHA-256 first (C{sipedge.auth._offer} says why: the
clients people use). Credentials weaker than their user's floor are
refused; each success is remembered (C{IAlgorithmMemory}, the credential
store's), so a user is never offered a weaker algorithm than one proven. C{stale=true} is set when
the response was right but its nonce had expired or is not one of ours
(another secret), or was a replay (so a client that reordered its
requests simply retries), never when the response was wrong (RFC 7616
3.3).

Credentials are those of the header field the challenge asked for
(Authorization for 401, Proxy-Authorization for 407) whose realm is ours;
others belong to other servers (RFC 3261 22.3) and are left alone. Their
C{uri} must be the Request-URI as it arrived, compared by the rules of
RFC 3261 19.1.4 (RFC 2617 3.2.2.5: 400 otherwise). Once they check out:
 - C{context.identity} is the AOR C{sip:user@realm};
 - the Proxy-Authorization values for our realm are removed: they were for
   us alone (RFC 3261 22.3) and downstream has no use for them. Other
   realms' values, and Authorization (end to end: meant for the registrar
   or UAS, RFC 3261 22.2), are forwarded untouched;
 - the user may only use their own name in From, and register only their
   own AOR (To): 403 otherwise. Our domains are one user space: alice may
   be C{sip:alice@} any of them.

Every decision leaves C{annotations["digest-auth"]}: a dict with
C{result} (C{"challenged"}: no credentials, or a right response with a
stale or unknown nonce; C{"failed"}: wrong or unusable credentials, or a
replay; C{"forbidden"}: right credentials used for somebody else's
identity; C{"refused"}: not checked, the account being over its budget
of failures from all sources, see L{sipedge.security.AccountGuard};
C{"ok"}), C{reason}, C{source} (the peer's IP address) and
C{user} (plus C{algorithm} when ok). The same fields, with
C{rule="digest-auth"}, are in the log event. A 401/407 ends the chain, so
no later stage sees the annotation: a C{"failed"} or C{"refused"} result is
reported as an C{"auth-failure"} offence of the source to C{services.security} (the
L{sipedge.security.Security} that counts offences into bans) when the
services have one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import implementer

from sipedge.auth import (
    DEFAULT_ALGORITHMS,
    ChallengeCache,
    IAlgorithmMemory,
    ISipUser,
    NonceStatus,
    RememberedAlgorithms,
    SipDigestCredentials,
    UnsupportedAlgorithm,
    canonical_algorithm,
    challenge_algorithms,
    floor_of,
    hash_algorithm,
    strength,
)
from sipedge.error import ConfigError, MessageParseError
from sipedge.interfaces import IDialogNeutralStage, IRequestStage
from sipedge.message import (
    DigestCredentials,
    Headers,
    SipURI,
    escape_user,
    parse_auth_header,
    parse_uri,
)
from sipedge.pipeline._context import RequestContext
from sipedge.results import Continue, Respond, StageResult

if TYPE_CHECKING:
    from sipedge.auth import AuthConfig
    from sipedge.pipeline._services import StageServices

__all__ = ["NAME", "DigestAuthStage", "build_digest_auth_stage"]

NAME = "digest-auth"

_CONTINUE = Continue()
_NEVER_CHALLENGED = frozenset(("ACK", "CANCEL"))
_QOP = ("auth", "auth-int")
_LOCKED = (
    "account over its failure budget: credentials checked only from sources"
    " it authenticated from before and trusted networks"
)


@attrs.frozen
class _Kind:
    """How we challenge: as a registrar (UAS) or as a proxy (RFC 3261 22.2, 22.3)."""

    status: int
    challenge: str
    credentials: str


_REGISTRAR = _Kind(401, "WWW-Authenticate", "Authorization")
_PROXY = _Kind(407, "Proxy-Authenticate", "Proxy-Authorization")


class _Refused(Exception):
    """Credentials that were there but cannot be accepted."""

    def __init__(self, reason: str, user: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user = user


def _same_uri(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return bool(parse_uri(a).equivalent(parse_uri(b)))
    except MessageParseError:
        return False


def _user_of(uri: object) -> str | None:
    return uri.unescaped_user if isinstance(uri, SipURI) else None


# In a dialog set up through us (not a REGISTER) it always continues: the
# dialog's first request was authenticated already.
@implementer(IRequestStage, IDialogNeutralStage)
class DigestAuthStage:
    """
    @param portal: a C{twisted.cred} portal whose checkers take
        L{sipedge.auth.ISipDigestCredentials} and whose realm gives
        L{sipedge.auth.ISipUser} avatars (L{sipedge.auth.make_portal}).
    @param nonces: an L{sipedge.auth.INonceSource}.
    @param realm: the realm of our challenges.
    @param algorithms: the algorithms accepted (which are offered depends
        on the user: L{sipedge.auth.challenge_algorithms}).
    @param require_for_our_domains: C{False} to challenge only REGISTER.
    @param minimum: the weakest hash algorithm offered or accepted.
    @param memory: the L{IAlgorithmMemory} of what users proved; a new
        in-memory one if C{None}.
    """

    name = NAME

    def __init__(
        self,
        portal: Any,
        nonces: Any,
        realm: str,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        *,
        require_for_our_domains: bool = True,
        minimum: str = "MD5",
        memory: IAlgorithmMemory | None = None,
    ) -> None:
        if not algorithms:
            raise ValueError("offer at least one algorithm")
        self.portal = portal
        self.nonces = nonces
        self.realm = realm
        self.algorithms = tuple(canonical_algorithm(a) for a in algorithms)
        self.require_for_our_domains = require_for_our_domains
        self.minimum = hash_algorithm(minimum)
        self.memory: IAlgorithmMemory = RememberedAlgorithms() if memory is None else memory
        #: Decisions by C{(result, algorithm)}: the results of the module
        #: docstring; the algorithm the credentials used (any of
        #: L{sipedge.auth.ALGORITHMS}, C{"other"}), C{"none"} without any.
        self.outcomes: Counter[tuple[str, str]] = Counter()
        #: The challenges' header values by template (a fresh nonce each).
        self.challenges = ChallengeCache(_QOP)

    def _algorithm_label(self, credentials: DigestCredentials | None) -> str:
        """The algorithm C{credentials} used, as a bounded label: C{none}, C{other}, or ours."""
        if credentials is None:
            return "none"
        try:
            return canonical_algorithm(credentials.algorithm)  # one of ALGORITHMS
        except UnsupportedAlgorithm:
            return "other"

    def floor(self, user: str | None) -> str:
        """The weakest hash algorithm C{user} (C{None}: unknown) may use."""
        proven = None if user is None else self.memory.strongest(user, self.realm)
        return floor_of(self.minimum, proven)

    # -- deciding --------------------------------------------------------------

    def process_request(self, context: RequestContext) -> StageResult | Deferred[StageResult]:
        request = context.request
        if request.method in _NEVER_CHALLENGED:
            return _CONTINUE
        if context.annotations.get("route") == "dialog" and request.method != "REGISTER":
            # In a dialog set up through us (our signed Record-Route came
            # back): the dialog's first request was authenticated already.
            return _CONTINUE
        local = context.services.local
        try:
            from_uri = request.from_address.uri
            registrar = request.method == "REGISTER" and local.is_our_domain(request.request_uri)
        except MessageParseError as e:
            return Respond(400, None, (("Warning", f'399 sipedge "{e.reason}"'),))
        if registrar:
            kind = _REGISTRAR
        elif self.require_for_our_domains and local.is_our_domain(from_uri):
            kind = _PROXY
        else:
            return _CONTINUE
        credentials: DigestCredentials | None = None
        try:
            credentials = self._credentials(request.headers.get_all(kind.credentials))
            if credentials is None:
                return self._challenge(
                    context,
                    kind,
                    "challenged",
                    "no credentials",
                    None,
                    claimed=self._claimed(context, kind),
                )
            digest = self._usable(context, credentials)
        except _Refused as e:
            return self._challenge(context, kind, "failed", e.reason, e.user, used=credentials)
        status = self.nonces.validate(credentials.nonce, self.realm)
        if not _same_uri(credentials.uri, context.original.uri):
            self._note(context, "failed", "uri mismatch", credentials.username, used=credentials)
            return Respond(400, "Authorization URI Mismatch")
        security = _account_guard(context)
        check = None
        if security is not None:
            # Counted in advance against the account's failure budget.
            check = security.may_check_password(credentials.username, context.flow.remote_host)
            if check is None:
                # Past the account's failure budget, from a source it never
                # authenticated from: refused unchecked (right or wrong).
                self._note(context, "refused", _LOCKED, credentials.username, used=credentials)
                return Respond(403, "Forbidden")
        d = self.portal.login(digest, None, ISipUser)
        d.addCallbacks(
            self._logged_in,
            self._login_failed,
            callbackArgs=(context, kind, credentials, status, check),
            errbackArgs=(context, kind, credentials, check),
        )
        return d

    def _credentials(self, values: Sequence[str]) -> DigestCredentials | None:
        """
        The first digest credentials for our realm among C{values}, or
        C{None}. Values that do not parse, of other schemes, or of other
        realms are someone else's business.

        @raise _Refused: if ours are malformed.
        """
        for value in values:
            try:
                header = parse_auth_header(value)
            except MessageParseError:
                continue
            if not header.is_digest or header.param("realm") != self.realm:
                continue
            try:
                return header.as_credentials()
            except MessageParseError as e:
                raise _Refused(
                    f"malformed credentials: {e.reason}", header.param("username")
                ) from None
        return None

    def _usable(
        self, context: RequestContext, credentials: DigestCredentials
    ) -> SipDigestCredentials:
        """
        The credentials to check, if they answer a challenge we could have
        made.

        @raise _Refused: if not.
        """
        user = credentials.username
        if credentials.userhash:
            raise _Refused("userhash not offered", user)
        try:
            algorithm = canonical_algorithm(credentials.algorithm)
        except UnsupportedAlgorithm:
            raise _Refused(f"unsupported algorithm {credentials.algorithm!r}", user) from None
        if algorithm not in self.algorithms:
            raise _Refused(f"algorithm {algorithm} not offered", user)
        floor = self.floor(user)
        if strength(algorithm) < strength(floor):
            raise _Refused(
                f"algorithm {algorithm} is weaker than {floor}, required of {user}", user
            )
        return SipDigestCredentials(credentials, context.original.method, context.original.body)

    def _logged_in(
        self,
        login: tuple[Any, Any, Any],
        context: RequestContext,
        kind: _Kind,
        credentials: DigestCredentials,
        status: NonceStatus,
        check: Any = None,
    ) -> StageResult:
        _, avatar, logout = login
        logout()
        user = avatar.username
        if check is not None:  # the password was right: not a failure
            _account_guard(context).password_right(check)
        if status is not NonceStatus.VALID:
            # RFC 7616 3.3: stale=true for a right digest with a nonce we
            # cannot accept (expired, or made with another secret: before
            # the state directory was replaced, or by a cluster peer).
            reason = "stale nonce" if status is NonceStatus.STALE else "unknown nonce"
            return self._challenge(
                context, kind, "challenged", reason, user, stale=True, used=credentials
            )
        if not self.nonces.record_use(credentials.nonce, credentials.nonce_count):
            return self._challenge(
                context, kind, "failed", "replayed nonce count", user, stale=True,
                used=credentials,
            )
        request = context.request
        local = context.services.local
        from_uri = request.from_address.uri
        if _user_of(from_uri) != user or not local.is_our_domain(from_uri):
            return self._forbidden(
                context, user, "From is not the authenticated user", credentials
            )
        if kind is _REGISTRAR:
            try:
                to_uri = request.to_address.uri
            except MessageParseError:
                return self._forbidden(context, user, "To does not parse", credentials)
            if _user_of(to_uri) != user or not local.is_our_domain(to_uri):
                return self._forbidden(
                    context, user, "To is not the authenticated user's AOR", credentials
                )
        context.identity = f"sip:{escape_user(user)}@{self.realm}"
        security = _account_guard(context)
        if security is not None:
            security.password_ok(user, context.flow.remote_host)
        if kind is _PROXY:
            context.request = request.with_headers(self._consumed(request.headers))
        algorithm = digest_algorithm(credentials)
        self.memory.record(user, self.realm, hash_algorithm(algorithm))
        self._note(context, "ok", "authenticated", user, used=credentials, algorithm=algorithm)
        return _CONTINUE

    def _login_failed(
        self,
        failure: Failure,
        context: RequestContext,
        kind: _Kind,
        credentials: DigestCredentials,
        check: Any = None,
    ) -> StageResult:
        failure.trap(UnauthorizedLogin)
        security = _account_guard(context)
        if security is not None:
            security.password_failed(credentials.username, context.flow.remote_host, check)
        return self._challenge(
            context, kind, "failed", "wrong credentials", credentials.username, used=credentials
        )

    def _consumed(self, headers: Headers) -> Headers:
        """C{headers} without the Proxy-Authorization values for our realm."""
        fields = []
        for field in headers.fields:
            if field[0] == "proxy-authorization":
                try:
                    header = parse_auth_header(field[2])
                except MessageParseError:
                    header = None
                if header is not None and header.is_digest and header.param("realm") == self.realm:
                    continue
            fields.append(field)
        return Headers(tuple(fields))

    # -- answering -------------------------------------------------------------

    @staticmethod
    def _claimed(context: RequestContext, kind: _Kind) -> str | None:
        """The user a request without credentials claims to be (To of a REGISTER, else From)."""
        request = context.request
        try:
            uri = request.to_address.uri if kind is _REGISTRAR else request.from_address.uri
        except MessageParseError:
            return None
        return _user_of(uri)

    def _challenge(
        self,
        context: RequestContext,
        kind: _Kind,
        result: str,
        reason: str,
        user: str | None,
        *,
        stale: bool = False,
        claimed: str | None = None,
        used: DigestCredentials | None = None,
    ) -> Respond:
        """
        A 401 or 407 with one challenge per algorithm C{user} (or, without
        credentials, the C{claimed} user) may use, and a fresh nonce.
        """
        self._note(context, result, reason, user, used=used)
        algorithms = challenge_algorithms(self.algorithms, self.floor(user or claimed))
        nonce = self.nonces.issue(self.realm)
        values = self.challenges.values(self.realm, algorithms, nonce, stale=stale)
        headers = tuple((kind.challenge, value) for value in values)
        return Respond(kind.status, None, headers)

    def _forbidden(
        self, context: RequestContext, user: str, reason: str, used: DigestCredentials
    ) -> Respond:
        self._note(context, "forbidden", reason, user, used=used)
        return Respond(403, "Forbidden")

    def _note(
        self,
        context: RequestContext,
        result: str,
        reason: str,
        user: str | None,
        *,
        used: DigestCredentials | None = None,
        **extra: str,
    ) -> None:
        """Annotate, count and log one decision (C{used}: the credentials it judged)."""
        self.outcomes[(result, self._algorithm_label(used))] += 1
        source = context.flow.remote_host
        context.annotations[NAME] = {
            "result": result,
            "reason": reason,
            "source": source,
            "user": user,
            **extra,
        }
        if result in ("failed", "refused"):
            security = getattr(context.services, "security", None)
            if security is not None:
                security.offence(source, "auth-failure", f"{NAME}: {reason} ({user})")
        # A challenge is every phone's first step (and most of a flood of
        # REGISTERs and INVITEs from strangers): debug, not a line each.
        if result == "challenged":
            log = context.log.debug
        else:
            log = context.log.info if result == "ok" else context.log.warn
        log(
            "Digest authentication {result} for {user} from {source}: {reason}",
            rule=NAME,
            result=result,
            reason=reason,
            source=source,
            user=user,
            method=context.request.method,
            realm=self.realm,
            **extra,
        )


def _account_guard(context: RequestContext) -> Any:
    """
    The security service, if the services have one that guards accounts
    (L{sipedge.security.Security.may_check_password}), else C{None}.
    """
    security = getattr(context.services, "security", None)
    return security if hasattr(security, "may_check_password") else None


def digest_algorithm(credentials: DigestCredentials) -> str:
    """The canonical algorithm of C{credentials} (MD5 if none is named)."""
    return canonical_algorithm(credentials.algorithm)


# -- building from configuration ------------------------------------------------


def build_digest_auth_stage(
    options: dict[str, Any], services: StageServices, section: AuthConfig | None = None
) -> DigestAuthStage:
    """
    The stage from its C{[pipeline.options.digest-auth]} table (C{realm},
    C{nonce_lifetime}, C{algorithms}) over the C{[auth]} section, if the
    configuration has one.

    The credential store is C{services.credentials} if the services have
    one, else the SQLite store of the state directory; the nonce source is
    C{services.nonces} if there is one, else one keyed with the secret of
    the state directory.

    @raise ConfigError: for a bad option, or no state directory.
    """
    from sipedge.auth import (
        NonceSource,
        SQLiteCredentialStore,
        make_portal,
        parse_auth_config,
    )

    config = services.config
    base = section if section is not None else services.settings.auth
    settings = parse_auth_config(options, f"pipeline.options.{NAME}", base)
    if config is not None:
        domains: Sequence[str] = config.sip.domains
    else:
        domains = sorted(services.local.domains)
    realm = settings.realm_for(domains)
    store = services.credentials
    nonces = services.nonces
    if store is None or nonces is None:
        state = config.state.path if config is not None else None
        if state is None:
            raise ConfigError(f"pipeline.options.{NAME}: needs a state directory (state.path)")
        if store is None:
            store = SQLiteCredentialStore.in_state_directory(state)
        if nonces is None:
            nonces = NonceSource.in_state_directory(state, services.clock, settings.nonce_lifetime)
    memory = store if IAlgorithmMemory.providedBy(store) else None
    return DigestAuthStage(
        make_portal(store),
        nonces,
        realm,
        settings.algorithms,
        require_for_our_domains=settings.require_for_our_domains,
        minimum=settings.minimum_algorithm,
        memory=memory,
    )
