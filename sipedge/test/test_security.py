# -*- test-case-name: sipedge.test.test_security -*-
"""
Tests for L{sipedge.security}: token buckets, the allow-list, bans and
offences, the L{Security} bundle, and the transports' admission hook.
"""

from __future__ import annotations

import ipaddress
import math
import sqlite3
from pathlib import Path
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, DatagramProtocol, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge import _debug
from sipedge.error import ConfigError
from sipedge.interfaces import IBanStore
from sipedge.security import (
    AUTHENTICATED,
    BAN_WATCH_INTERVAL,
    DATABASE_NAME,
    STAT_KEYS,
    TRUSTED,
    UNAUTHENTICATED,
    AllowList,
    Ban,
    Bans,
    Budget,
    RateLimiter,
    Security,
    SecurityConfig,
    TrustedNetworks,
    UserAgentMatcher,
    Verdict,
    canonical_ip,
    method_class,
)
from sipedge.testing import (
    FakeReactor,
    RecordingReceiver,
    capture_log,
)
from sipedge.transport import (
    MAX_DATAGRAM_SIZE,
    SipDatagramProtocol,
    SipStreamProtocol,
    TransportManager,
)
from sipedge.transport import _udp as udp_module

ATTACKER = "203.0.113.66"
PHONE = "198.51.100.7"
TRUNK = "10.1.2.3"
TRUSTED_NETS = (ipaddress.ip_network("10.0.0.0/8"),)

BUDGETS = {
    UNAUTHENTICATED: Budget(5.0, 10.0),
    AUTHENTICATED: Budget(50.0, 100.0),
    TRUSTED: Budget(5000.0, 10000.0),
}

OPTIONS = (
    b"OPTIONS sip:proxy.example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.66:5060;branch=z9hG4bK-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:x@example.test>;tag=1\r\n"
    b"To: <sip:proxy.example.test>\r\n"
    b"Call-ID: admission-1\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def take_all(limiter: RateLimiter, n: int, now: float, **kwargs: Any) -> list[Verdict]:
    source = kwargs.get("source", ATTACKER)
    klass = kwargs.get("klass", "invite")
    tier = kwargs.get("tier", UNAUTHENTICATED)
    return [limiter.take(source, klass, tier, now) for _ in range(n)]


class AddressTests(SynchronousTestCase):
    """Tests for L{canonical_ip} and L{TrustedNetworks}."""

    def test_canonical(self) -> None:
        """
        If an address is written in brackets, uncompressed or IPv4-mapped,
        L{canonical_ip} gives one canonical text; not an address, C{None}.
        """
        self.assertEqual(canonical_ip("192.0.2.1"), "192.0.2.1")
        self.assertEqual(canonical_ip("[2001:db8:0:0::1]"), "2001:db8::1")
        self.assertEqual(canonical_ip("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertIsNone(canonical_ip("example.com"))
        self.assertEqual(canonical_ip("fe80::1%eth0"), "fe80::1")  # one key, whatever the zone

    def test_trusted(self) -> None:
        """
        If an address is in a configured network (as text or network,
        IPv4-mapped too), L{TrustedNetworks} contains it; nothing else.
        """
        trusted = TrustedNetworks(["10.0.0.0/8", ipaddress.ip_network("2001:db8::/32")])
        self.assertIn("10.9.9.9", trusted)
        self.assertIn("::ffff:10.0.0.1", trusted)
        self.assertIn("[2001:db8::5]", trusted)
        self.assertNotIn("192.0.2.1", trusted)
        self.assertNotIn("not-an-address", trusted)
        self.assertNotIn(None, trusted)
        self.assertFalse(TrustedNetworks())
        self.assertNotIn("10.0.0.1", TrustedNetworks())


class BudgetTests(SynchronousTestCase):
    """Tests for L{Budget}."""

    def test_valid(self) -> None:
        """If rate and burst are positive, L{Budget} keeps them and knows its refill time."""
        self.assertEqual(Budget(5.0, 10.0).refill_time, 2.0)

    def test_invalid(self) -> None:
        """If the rate is not positive or the burst is under 1, L{Budget} raises."""
        self.assertRaises(ValueError, Budget, 0.0, 10.0)
        self.assertRaises(ValueError, Budget, math.inf, 10.0)
        self.assertRaises(ValueError, Budget, 5.0, 0.5)
        self.assertRaises(TypeError, Budget, True, 10.0)


class RateLimiterTests(SynchronousTestCase):
    """Tests for L{RateLimiter}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.limiter = RateLimiter(BUDGETS)

    def test_method_class(self) -> None:
        """If a method is INVITE or REGISTER it has its own class; the rest are 'other'."""
        self.assertEqual(
            [method_class(m) for m in ("INVITE", "REGISTER", "OPTIONS", "ACK", "invite")],
            ["invite", "register", "other", "other", "other"],
        )

    def test_burst_then_over(self) -> None:
        """
        If a new source sends more than its burst at once, L{RateLimiter}
        admits the burst, then reports the first request over budget and
        not the next ones.
        """
        verdicts = take_all(self.limiter, 13, 0.0)
        self.assertEqual(verdicts[:10], [Verdict.ADMIT] * 10)
        self.assertEqual(verdicts[10:], [Verdict.OVER_REPORT, Verdict.OVER, Verdict.OVER])

    def test_refused_by_budget(self) -> None:
        """
        L{RateLimiter.refused} counts the requests over budget by tier and
        method class (a bounded key, whatever the source), admitted ones
        not at all.
        """
        take_all(self.limiter, 13, 0.0)
        take_all(self.limiter, 101, 0.0, source=PHONE, tier=AUTHENTICATED)
        self.limiter.take(ATTACKER, "register", UNAUTHENTICATED, 0.0)
        self.assertEqual(dict(self.limiter.refused), {
            (UNAUTHENTICATED, "invite"): 3, (AUTHENTICATED, "invite"): 1,
        })

    def test_report_interval(self) -> None:
        """
        If a key stays over budget, L{RateLimiter} reports it again only
        once the report interval has passed.
        """
        limiter = RateLimiter(BUDGETS, report_interval=1.0)
        take_all(limiter, 11, 0.0)
        self.clock.advance(0.1)  # refills half a token
        self.assertEqual(take_all(limiter, 1, self.clock.seconds()), [Verdict.OVER])
        self.clock.advance(0.9)
        now = self.clock.seconds()
        # The second's refill is spent first; then a report.
        verdicts = take_all(limiter, 6, now)
        self.assertEqual(verdicts[:4], [Verdict.ADMIT] * 4)
        self.assertEqual(verdicts[-1], Verdict.OVER_REPORT)

    def test_refill(self) -> None:
        """
        If time passes after a burst, L{RateLimiter} admits C{rate} more per
        second, and never more than C{burst} at once.
        """
        take_all(self.limiter, 10, self.clock.seconds())
        self.clock.advance(1.0)
        self.assertEqual(take_all(self.limiter, 6, self.clock.seconds()).count(Verdict.ADMIT), 5)
        self.clock.advance(1000.0)
        self.assertEqual(take_all(self.limiter, 12, self.clock.seconds()).count(Verdict.ADMIT), 10)
        self.assertEqual(
            self.limiter.tokens(ATTACKER, "invite", UNAUTHENTICATED, self.clock.seconds()), 0.0
        )

    def test_keys_independent(self) -> None:
        """
        If one source floods one method class, L{RateLimiter} still admits
        its other classes and other sources.
        """
        take_all(self.limiter, 20, 0.0)
        self.assertEqual(
            self.limiter.take(ATTACKER, "register", UNAUTHENTICATED, 0.0), Verdict.ADMIT
        )
        self.assertEqual(self.limiter.take(PHONE, "invite", UNAUTHENTICATED, 0.0), Verdict.ADMIT)

    def test_tiers(self) -> None:
        """
        If a source is trusted or authenticated, L{RateLimiter} applies the
        larger budget; a trunk's thousands of calls a second pass.
        """
        verdicts = take_all(self.limiter, 10000, 0.0, source=TRUNK, tier=TRUSTED)
        self.assertEqual(verdicts.count(Verdict.ADMIT), 10000)
        for step in range(1, 11):
            verdicts = take_all(self.limiter, 4000, step * 1.0, source=TRUNK, tier=TRUSTED)
            self.assertEqual(verdicts.count(Verdict.ADMIT), 4000)
        verdicts = take_all(self.limiter, 101, 0.0, source=PHONE, tier=AUTHENTICATED)
        self.assertEqual(verdicts.count(Verdict.ADMIT), 100)

    def test_tier_change(self) -> None:
        """
        If a source authenticates after exhausting its budget, its bucket
        refills at the larger rate from then on; if it loses the larger
        budget, its tokens are capped at the smaller burst.
        """
        take_all(self.limiter, 10, 0.0, source=PHONE)
        self.assertEqual(
            take_all(self.limiter, 60, 1.0, source=PHONE, tier=AUTHENTICATED).count(Verdict.ADMIT),
            50,
        )
        self.assertEqual(self.limiter.tokens(PHONE, "invite", AUTHENTICATED, 10.0), 100.0)
        self.assertEqual(take_all(self.limiter, 20, 10.0, source=PHONE).count(Verdict.ADMIT), 10)

    def test_key_cap_evicts_least_recently_used(self) -> None:
        """
        If more keys than C{max_keys} are used, L{RateLimiter} evicts the
        least recently used bucket and counts it.
        """
        stats: dict[str, int] = {}
        limiter = RateLimiter(BUDGETS, max_keys=3, stats=stats)
        for host in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
            take_all(limiter, 10, 0.0, source=host)
        take_all(limiter, 1, 0.0, source="192.0.2.1")  # used again: now the newest
        take_all(limiter, 1, 0.0, source="192.0.2.4")
        self.assertEqual(len(limiter), 3)
        self.assertEqual(stats["limiter_evicted"], 1)
        # 192.0.2.2 was evicted: it starts again with a full bucket.
        self.assertEqual(limiter.tokens("192.0.2.2", "invite", UNAUTHENTICATED, 0.0), 10.0)
        self.assertEqual(limiter.tokens("192.0.2.1", "invite", UNAUTHENTICATED, 0.0), 0.0)

    def test_idle_buckets_expire(self) -> None:
        """
        If buckets stay idle until full, L{RateLimiter.purge} drops them
        (losing nothing: a new bucket starts full) and keeps busy ones; a
        new key also drops an idle old one on its way in.
        """
        take_all(self.limiter, 10, 0.0, source="192.0.2.1")
        take_all(self.limiter, 10, 1.5, source="192.0.2.2")
        self.assertEqual(self.limiter.purge(1.9), 0)
        self.assertEqual(self.limiter.purge(2.0), 1)
        self.assertEqual(len(self.limiter), 1)
        take_all(self.limiter, 1, 3.5, source="192.0.2.3")
        self.assertEqual(len(self.limiter), 1)

    def test_bad_arguments(self) -> None:
        """If a tier has no budget or C{max_keys} is under 1, L{RateLimiter} raises."""
        self.assertRaises(ValueError, RateLimiter, {TRUSTED: Budget(1.0, 1.0)})
        self.assertRaises(ValueError, RateLimiter, BUDGETS, max_keys=0)

    @given(
        st.lists(
            st.tuples(
                st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
                st.integers(min_value=0, max_value=25),
                st.booleans(),
            ),
            max_size=40,
        ),
        st.sampled_from([UNAUTHENTICATED, AUTHENTICATED]),
    )
    def test_never_over_budget(self, steps: list[tuple[float, int, bool]], tier: str) -> None:
        """
        If requests arrive in any pattern (with purges in between), the
        L{RateLimiter} never admits more than C{rate * t + burst} of one
        key in any window of C{t} seconds.
        """
        clock = Clock()
        limiter = RateLimiter(BUDGETS)
        budget = BUDGETS[tier]
        admitted: list[float] = []
        for dt, count, purge in steps:
            clock.advance(dt)
            now = clock.seconds()
            if purge:
                limiter.purge(now)
            for _ in range(count):
                if limiter.take(ATTACKER, "invite", tier, now) is Verdict.ADMIT:
                    admitted.append(now)
        # Window [admitted[i], admitted[j]] holds j - i + 1 admissions; the
        # worst i for each j maximizes rate * t_i - i.
        best = -math.inf
        for j, t_j in enumerate(admitted):
            best = max(best, budget.rate * t_j - j)
            worst = (j + 1 - budget.rate * t_j) + best
            self.assertLessEqual(worst, budget.burst + 1e-6)
        self.assertEqual(clock.getDelayedCalls(), [])

    @given(st.floats(min_value=2.0, max_value=1e6, allow_nan=False))
    def test_full_after_quiet(self, quiet: float) -> None:
        """
        If a key has been quiet for its refill time or more, L{RateLimiter}
        admits a whole burst again.
        """
        limiter = RateLimiter(BUDGETS)
        take_all(limiter, 30, 0.0)
        self.assertEqual(take_all(limiter, 10, quiet), [Verdict.ADMIT] * 10)


class AllowListTests(SynchronousTestCase):
    """Tests for L{AllowList}."""

    def setUp(self) -> None:
        self.events = capture_log(self)
        self.allow = AllowList()

    def test_expires_with_registration(self) -> None:
        """
        If a user authenticated from a source until some time, L{AllowList}
        says the source is authenticated until then, and not after.
        """
        self.allow.note_authenticated(PHONE, "sip:alice@example.com", 3600.0)
        self.assertTrue(self.allow.is_authenticated(PHONE, 3599.9))
        self.assertFalse(self.allow.is_authenticated(PHONE, 3600.0))
        self.assertEqual(len(self.allow), 0)
        self.assertFalse(self.allow.is_authenticated("192.0.2.99", 0.0))

    def test_several_users(self) -> None:
        """
        If several users authenticated from one source (a NAT), L{AllowList}
        keeps it authenticated while any of them is.
        """
        self.allow.note_authenticated(PHONE, "alice", 100.0)
        self.allow.note_authenticated(PHONE, "bob", 200.0)
        self.assertTrue(self.allow.is_authenticated(PHONE, 150.0))
        self.assertEqual(self.allow.users(PHONE, 150.0), {"bob": 200.0})
        self.assertFalse(self.allow.is_authenticated(PHONE, 200.0))

    def test_deregistration(self) -> None:
        """If a user's later note expires now (a de-REGISTER), L{AllowList} forgets it."""
        self.allow.note_authenticated(PHONE, "alice", 3600.0)
        self.allow.note_authenticated(PHONE, "alice", 10.0)
        self.assertFalse(self.allow.is_authenticated(PHONE, 10.0))

    def test_canonical(self) -> None:
        """If a source is written differently, L{AllowList} still finds it."""
        self.allow.note_authenticated("2001:db8:0::7", "alice", 100.0)
        self.assertTrue(self.allow.is_authenticated("2001:db8::7", 0.0))
        self.allow.note_authenticated("::ffff:192.0.2.7", "bob", 100.0)
        self.assertTrue(self.allow.is_authenticated("192.0.2.7", 0.0))

    def test_cap(self) -> None:
        """
        If more sources than C{max_sources} are noted, L{AllowList} evicts
        the one noted longest ago and counts it.
        """
        allow = AllowList(max_sources=2)
        allow.note_authenticated("192.0.2.1", "a", 100.0)
        allow.note_authenticated("192.0.2.2", "b", 100.0)
        allow.note_authenticated("192.0.2.1", "a", 100.0)
        allow.note_authenticated("192.0.2.3", "c", 100.0)
        self.assertEqual(
            [allow.is_authenticated(f"192.0.2.{i}", 0.0) for i in (1, 2, 3)],
            [True, False, True],
        )
        self.assertEqual(allow.stats["allow_evicted"], 1)
        self.assertEqual(allow.stats["allow_noted"], 4)

    def test_purge(self) -> None:
        """If entries have expired, L{AllowList.purge} drops them and keeps the rest."""
        self.allow.note_authenticated("192.0.2.1", "a", 10.0)
        self.allow.note_authenticated("192.0.2.2", "b", 10.0)
        self.allow.note_authenticated("192.0.2.2", "c", 30.0)
        self.assertEqual(self.allow.purge(20.0), 1)
        self.assertEqual(self.allow.users("192.0.2.2", 20.0), {"c": 30.0})

    def test_not_an_address(self) -> None:
        """If the source is not an IP address, L{AllowList} logs it and ignores it."""
        self.allow.note_authenticated("phone.example.com", "alice", 100.0)
        self.assertEqual(len(self.allow), 0)
        [event] = [e for e in self.events if e.get("source") == "phone.example.com"]
        self.assertEqual(event["user"], "alice")
        self.assertRaises(ValueError, AllowList, max_sources=0)


class BansTests(SynchronousTestCase):
    """Tests for L{Bans}."""

    def setUp(self) -> None:
        self.events = capture_log(self)
        self.bans = self.open()

    def open(self, path: str | Path = ":memory:", **kwargs: Any) -> Bans:
        kwargs.setdefault("trusted", TRUSTED_NETS)
        bans = Bans(path, **kwargs)
        self.addCleanup(bans.close)
        return bans

    def test_first_ban(self) -> None:
        """
        If a source is banned, L{Bans} bans it for the base duration, logs
        the ban with its fields and counts it.
        """
        ban = self.bans.ban(ATTACKER, "testing", 100.0)
        self.assertEqual(ban, Ban(ATTACKER, "testing", 100.0, 160.0, 1))
        assert ban is not None
        self.assertEqual((ban.duration, ban.remaining(130.0), ban.permanent), (60.0, 30.0, False))
        self.assertTrue(self.bans.is_banned(ATTACKER, 159.9))
        self.assertFalse(self.bans.is_banned(PHONE, 100.0))
        [event] = [e for e in self.events if e.get("rule") == "ban" and "count" in e]
        self.assertEqual(
            (event["source"], event["reason"], event["duration"], event["count"]),
            (ATTACKER, "testing", 60.0, 1),
        )
        self.assertEqual(self.bans.stats["bans_created"], 1)

    def test_expiry(self) -> None:
        """
        If a ban's time is up, L{Bans.is_banned} says no, logs the expiry
        once and counts it.
        """
        self.bans.ban(ATTACKER, "testing", 0.0)
        self.assertFalse(self.bans.is_banned(ATTACKER, 60.0))
        self.assertFalse(self.bans.is_banned(ATTACKER, 61.0))
        expired = [e for e in self.events if e.get("log_format") == "Ban of {source} expired"]
        self.assertEqual([e["source"] for e in expired], [ATTACKER])
        self.assertEqual(self.bans.stats["bans_expired"], 1)
        self.assertEqual(self.bans.list(60.0), [])
        self.assertIsNone(self.bans.get(ATTACKER, 60.0))

    def test_growth(self) -> None:
        """
        If a source is banned again while its last ban is remembered,
        L{Bans} doubles the duration each time, up to the maximum.
        """
        bans = self.open(base=60.0, maximum=300.0, memory=3600.0)
        durations = []
        now = 0.0
        for _ in range(5):
            ban = bans.ban(ATTACKER, "again", now)
            assert ban is not None
            durations.append((ban.duration, ban.count))
            now = ban.expires_at + 10.0
        self.assertEqual(durations, [(60.0, 1), (120.0, 2), (240.0, 3), (300.0, 4), (300.0, 5)])

    def test_memory_forgets(self) -> None:
        """
        If a source offends again only after its last ban's memory has run
        out, L{Bans} bans it for the base duration again, and
        L{Bans.purge} forgets the old record.
        """
        bans = self.open(base=60.0, maximum=3600.0, memory=600.0)
        bans.ban(ATTACKER, "first", 0.0)
        bans.ban(ATTACKER, "second", 100.0)  # count 2: 120 s, until 220
        ban = bans.ban(ATTACKER, "third", 220.0 + 600.0)
        assert ban is not None
        self.assertEqual((ban.count, ban.duration), (1, 60.0))
        bans.purge(880.0 + 600.0)
        self.assertEqual(bans._db.execute("SELECT COUNT(*) FROM bans").fetchone()[0], 0)

    def test_ban_while_banned_extends(self) -> None:
        """If a banned source is banned again, L{Bans} keeps the later end."""
        self.bans.ban(ATTACKER, "long", 0.0, duration=1000.0)
        ban = self.bans.ban(ATTACKER, "short", 10.0)
        assert ban is not None
        self.assertEqual((ban.expires_at, ban.count), (1000.0, 2))

    def test_explicit_and_permanent(self) -> None:
        """
        If a duration is given, L{Bans} uses it; C{inf} bans for ever; a
        non-positive one or a non-address raises.
        """
        ban = self.bans.ban(ATTACKER, "by hand", 0.0, duration=math.inf)
        assert ban is not None
        self.assertTrue(ban.permanent)
        self.assertTrue(self.bans.is_banned(ATTACKER, 1e12))
        self.assertRaises(ValueError, self.bans.ban, PHONE, "x", 0.0, duration=0.0)
        self.assertRaises(ValueError, self.bans.ban, "example.com", "x", 0.0)
        self.assertRaises(ValueError, Bans, ":memory:", base=100.0, maximum=10.0)
        self.assertRaises(ValueError, Bans, ":memory:", thresholds={"flood": 0})

    def test_never_trusted(self) -> None:
        """
        If a source is in a trusted network, L{Bans} refuses to ban it, by
        hand or for offences, and logs and counts the refusal.
        """
        self.assertIsNone(self.bans.ban(TRUNK, "testing", 0.0))
        self.assertIsNone(self.bans.ban("::ffff:10.0.0.1", "testing", 0.0))
        for _ in range(5):
            self.assertIsNone(self.bans.offence(TRUNK, "scanner", 0.0))
        self.assertFalse(self.bans.is_banned(TRUNK, 0.0))
        refused = [e for e in self.events if e.get("rule") == "trusted"]
        self.assertEqual([e["source"] for e in refused], [TRUNK, "10.0.0.1"] + [TRUNK] * 5)
        self.assertEqual(self.bans.stats["bans_refused_trusted"], 7)

    def test_canonical(self) -> None:
        """If a source is written differently, L{Bans} still finds its ban."""
        self.bans.ban("2001:db8:0:0::66", "v6", 0.0)
        self.assertTrue(self.bans.is_banned("2001:db8::66", 1.0))
        self.assertTrue(self.bans.is_banned("[2001:db8::66]", 1.0))
        self.bans.ban("::ffff:203.0.113.9", "mapped", 0.0)
        self.assertTrue(self.bans.is_banned("203.0.113.9", 1.0))
        self.assertFalse(self.bans.is_banned("not an address", 1.0))

    def test_unban_and_list(self) -> None:
        """
        If a ban is lifted, L{Bans} forgets it and its record; L{Bans.list}
        gives the bans in force, soonest to end first.
        """
        self.bans.ban("192.0.2.1", "one", 0.0, duration=500.0)
        self.bans.ban("192.0.2.2", "two", 0.0, duration=100.0)
        self.bans.ban("192.0.2.3", "three", 0.0, duration=10.0)
        self.assertEqual([b.source for b in self.bans.list(20.0)], ["192.0.2.2", "192.0.2.1"])
        self.assertTrue(self.bans.unban("192.0.2.2"))
        self.assertFalse(self.bans.unban("192.0.2.2"))
        self.assertFalse(self.bans.unban("nonsense"))
        self.assertFalse(self.bans.is_banned("192.0.2.2", 20.0))
        self.assertEqual([b.source for b in self.bans.list(20.0)], ["192.0.2.1"])
        self.assertEqual(self.bans.stats["bans_removed"], 1)
        again = self.bans.ban("192.0.2.2", "again", 30.0)
        assert again is not None
        self.assertEqual(again.count, 1)

    def test_persistence(self) -> None:
        """
        If the database is closed and opened again, L{Bans} still has every
        ban in force and the records that make repeat bans longer, but not
        the bans that ended meanwhile.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        bans = Bans.in_state_directory(directory, now=0.0)
        bans.ban(ATTACKER, "persisted ü", 0.0)
        bans.ban("192.0.2.1", "short", 0.0, duration=5.0)
        bans.close()
        self.assertTrue((directory / DATABASE_NAME).exists())
        reopened = self.open(directory / DATABASE_NAME, now=10.0)
        self.assertEqual(len(reopened), 1)
        self.assertTrue(reopened.is_banned(ATTACKER, 10.0))
        self.assertEqual(reopened.get(ATTACKER, 10.0), Ban(ATTACKER, "persisted ü", 0.0, 60.0, 1))
        ban = reopened.ban(ATTACKER, "again", 100.0)
        assert ban is not None
        self.assertEqual(ban.count, 2)
        self.assertEqual(reopened.schema_version, 1)

    def test_other_process_changes(self) -> None:
        """
        If another connection (C{sipedge ban}) adds or removes a ban,
        L{Bans.purge} reloads the mirror, and logs that it did.
        """
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        daemon = self.open(path, now=0.0)
        tool = self.open(path, now=0.0)
        daemon.ban("192.0.2.1", "by the daemon", 0.0)
        tool.ban(ATTACKER, "by hand", 0.0)
        self.assertFalse(daemon.is_banned(ATTACKER, 1.0))
        daemon.purge(1.0)
        self.assertTrue(daemon.is_banned(ATTACKER, 1.0))
        self.assertTrue(daemon.is_banned("192.0.2.1", 1.0))
        tool.unban(ATTACKER)
        daemon.purge(2.0)
        self.assertFalse(daemon.is_banned(ATTACKER, 2.0))
        reloads = [e for e in self.events if e.get("path") == str(path)]
        self.assertEqual([e["count"] for e in reloads], [2, 1])

    def test_newer_schema(self) -> None:
        """If the file has a newer schema, L{Bans} raises L{ConfigError} naming it."""
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        Bans(path).close()
        db = sqlite3.connect(path)
        db.execute("UPDATE schema_version SET version = 99")
        db.commit()
        db.close()
        error = self.assertRaises(ConfigError, Bans, path)
        self.assertIn("schema version 99", str(error))

    def test_not_a_database(self) -> None:
        """If the file is not SQLite, L{Bans} raises L{ConfigError} naming it."""
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"this is not a database" * 100)
        error = self.assertRaises(ConfigError, Bans, path)
        self.assertIn(str(path), str(error))

    def test_thresholds(self) -> None:
        """
        If offences of a kind reach its threshold within the window,
        L{Bans.offence} bans the source: 1 scanner hit, 3 floods, 5
        authentication failures; each offence is logged with its fields.
        """
        ban = self.bans.offence("192.0.2.1", "scanner", 0.0, "User-Agent 'sipvicious'")
        assert ban is not None
        self.assertEqual(ban.reason, "1 scanner offence in 60 s: User-Agent 'sipvicious'")
        for kind, threshold in (("flood", 3), ("auth-failure", 5)):
            source = f"192.0.2.{threshold}"
            results = [self.bans.offence(source, kind, float(i)) for i in range(threshold)]
            self.assertEqual(results[:-1], [None] * (threshold - 1))
            self.assertIsInstance(results[-1], Ban)
            self.assertTrue(self.bans.is_banned(source, float(threshold)))
        offences = [e for e in self.events if e.get("kind") == "flood"]
        self.assertEqual([e["count"] for e in offences], [1, 2, 3])
        self.assertEqual({e["rule"] for e in offences}, {"flood"})
        self.assertEqual(self.bans.stats["offences_auth_failure"], 5)

    def test_sliding_window(self) -> None:
        """
        If offences are spread wider than the window, L{Bans.offence} does
        not ban: old ones drop out.
        """
        bans = self.open(window=60.0)
        for t in (0.0, 30.0, 61.0, 92.0):
            self.assertIsNone(bans.offence(ATTACKER, "flood", t))
        self.assertEqual(bans.offences(ATTACKER, "flood", 92.0), 2)
        self.assertIsInstance(bans.offence(ATTACKER, "flood", 100.0), Ban)

    def test_offence_while_banned(self) -> None:
        """If a banned source offends (requests in flight), L{Bans.offence} does not count it."""
        self.bans.ban(ATTACKER, "x", 0.0)
        self.assertIsNone(self.bans.offence(ATTACKER, "flood", 1.0))
        self.assertEqual(self.bans.offences(ATTACKER, "flood", 1.0), 0)

    def test_offence_bad_input(self) -> None:
        """
        If the kind is unknown, L{Bans.offence} raises; if the source is not
        an address, it logs and ignores it.
        """
        self.assertRaises(ValueError, self.bans.offence, ATTACKER, "rudeness", 0.0)
        self.assertIsNone(self.bans.offence("example.com", "scanner", 0.0))
        [event] = [e for e in self.events if e.get("source") == "example.com"]
        self.assertEqual(event["rule"], "scanner")

    def test_configured_thresholds(self) -> None:
        """If thresholds are configured, L{Bans.offence} uses them."""
        bans = self.open(thresholds={"scanner": 2, "custom": 1})
        self.assertIsNone(bans.offence(ATTACKER, "scanner", 0.0))
        self.assertIsNotNone(bans.offence(ATTACKER, "scanner", 0.0))
        self.assertIsNotNone(bans.offence(PHONE, "custom", 0.0))
        self.assertEqual(bans.stats["offences_custom"], 1)

    def test_offence_counters_bounded(self) -> None:
        """
        If more sources offend than C{max_tracked}, L{Bans} forgets the
        least recently offending; L{Bans.purge} drops stale counters.
        """
        bans = self.open(max_tracked=2)
        bans.offence("192.0.2.1", "flood", 0.0)
        bans.offence("192.0.2.2", "flood", 0.0)
        bans.offence("192.0.2.3", "flood", 0.0)
        self.assertEqual(
            [bans.offences(f"192.0.2.{i}", "flood", 0.0) for i in (1, 2, 3)], [0, 1, 1]
        )
        bans.purge(60.0)
        self.assertEqual(len(bans._offences), 0)

    def test_purge_expires(self) -> None:
        """If bans have ended, L{Bans.purge} expires them and says how many."""
        self.bans.ban("192.0.2.1", "a", 0.0)
        self.bans.ban("192.0.2.2", "b", 0.0, duration=600.0)
        self.assertEqual(self.bans.purge(60.0), 1)
        self.assertEqual(len(self.bans), 1)


class SecurityTests(SynchronousTestCase):
    """Tests for the L{Security} bundle."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.events = capture_log(self)
        self.security = Security(clock=self.clock, trusted=TRUSTED_NETS)
        self.addCleanup(self.security.close)

    def test_stats(self) -> None:
        """If nothing has happened yet, every counter of L{Security.stats} is there, at 0."""
        self.assertEqual(self.security.stats, dict.fromkeys(STAT_KEYS, 0))

    def test_admit(self) -> None:
        """
        If a source is banned, L{Security.admit} refuses it (counted, logged
        with rule and source) until the ban ends.
        """
        _debug.set_enabled(True)  # the per-drop debug lines are asserted
        self.addCleanup(_debug.set_enabled, False)
        self.assertTrue(self.security.admit(ATTACKER))
        self.security.ban(ATTACKER, "testing")
        self.assertFalse(self.security.admit(ATTACKER))
        self.assertTrue(self.security.admit(PHONE))
        [event] = [e for e in self.events if e.get("log_format", "").startswith("Dropping")]
        self.assertEqual((event["rule"], event["source"]), ("ban", ATTACKER))
        self.assertEqual(self.security.stats["admission_refused"], 1)
        self.clock.advance(60)
        self.assertTrue(self.security.admit(ATTACKER))

    def test_tier_of(self) -> None:
        """
        If a source is trusted, or some user authenticated from it, or
        neither, L{Security.tier_of} says so; authentication expires.
        """
        now = self.clock.seconds()
        self.security.note_authenticated(PHONE, "alice", now + 3600)
        self.assertEqual(self.security.tier_of(TRUNK, now), TRUSTED)
        self.assertEqual(self.security.tier_of(PHONE, now), AUTHENTICATED)
        self.assertEqual(self.security.tier_of(ATTACKER, now), UNAUTHENTICATED)
        self.assertTrue(self.security.is_authenticated(PHONE))
        self.clock.advance(3600)
        self.assertEqual(self.security.tier_of(PHONE, self.clock.seconds()), UNAUTHENTICATED)

    def test_offence_and_unban(self) -> None:
        """If a source offends enough, L{Security} bans it; unban lifts it."""
        ban = self.security.offence(ATTACKER, "scanner", "User-Agent 'x'")
        assert ban is not None
        self.assertEqual(ban.banned_at, 1000.0)
        self.assertTrue(self.security.is_banned(ATTACKER))
        self.assertTrue(self.security.unban(ATTACKER))
        self.assertFalse(self.security.is_banned(ATTACKER))

    def test_periodic_purge(self) -> None:
        """
        If started, L{Security} purges every C{purge_interval} seconds:
        ended bans expire without anyone asking; stopped, no timer is left.
        """
        # The overload watch off: the purge's timer is the one counted here
        # (the bans in memory: no ban file to watch).
        security = Security(
            SecurityConfig(purge_interval=5.0, overload_lag=0.0), clock=self.clock
        )
        self.addCleanup(security.close)
        security.start()
        security.start()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        security.ban(ATTACKER, "x")
        security.note_authenticated(PHONE, "alice", self.clock.seconds() + 1)
        security.limiter.take(PHONE, "invite", UNAUTHENTICATED, self.clock.seconds())
        self.clock.pump([5.0] * 12)
        self.assertEqual(security.stats["bans_expired"], 1)
        self.assertEqual(
            (len(security.bans), len(security.allow), len(security.limiter)), (0, 0, 0)
        )
        security.stop()
        security.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_ban_file_watched(self) -> None:
        """
        A ban made or lifted by another process (C{sipedge ban}, another
        worker) in the ban file is in force within L{BAN_WATCH_INTERVAL},
        long before the next purge.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        security = Security(SecurityConfig(overload_lag=0.0), clock=self.clock,
                            state_dir=directory)
        self.addCleanup(security.close)
        other = Bans.in_state_directory(directory)
        self.addCleanup(other.close)
        security.start()
        self.assertLess(BAN_WATCH_INTERVAL * 5, security.config.purge_interval)
        other.ban(ATTACKER, "operator", self.clock.seconds())
        self.assertTrue(security.admit(ATTACKER))  # not read yet
        self.clock.advance(BAN_WATCH_INTERVAL)
        self.assertFalse(security.admit(ATTACKER))
        other.unban(ATTACKER)
        self.clock.advance(BAN_WATCH_INTERVAL)
        self.assertTrue(security.admit(ATTACKER))
        security.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_ban_file_unreadable_logged(self) -> None:
        """If the ban file cannot be read again, L{Security} logs it and keeps watching."""
        directory = Path(self.mktemp())
        directory.mkdir()
        security = Security(SecurityConfig(overload_lag=0.0), clock=self.clock,
                            state_dir=directory)
        self.addCleanup(security.close)
        calls: list[float] = []

        def broken(now: float) -> bool:
            calls.append(now)
            raise sqlite3.OperationalError("database is locked")

        self.patch(security.bans, "_reload_if_changed", broken)
        security.start()
        self.clock.pump([BAN_WATCH_INTERVAL] * 2)
        security.stop()
        self.assertEqual(len(calls), 2)

    def test_purge_failure_logged(self) -> None:
        """If a purge fails, L{Security} logs it and goes on purging."""
        security = Security(SecurityConfig(purge_interval=5.0), clock=self.clock)
        self.addCleanup(security.close)
        calls: list[None] = []

        def broken(now: float) -> int:
            calls.append(None)
            raise sqlite3.OperationalError("disk full")

        self.patch(security.bans, "purge", broken)
        security.start()
        self.clock.pump([5.0, 5.0])
        security.stop()
        self.assertEqual(len(calls), 2)
        self.assertEqual(len(self.flushLoggedErrors(sqlite3.OperationalError)), 2)

    def test_state_dir(self) -> None:
        """If given a state directory, L{Security} keeps its bans there, across restarts."""
        directory = Path(self.mktemp())
        directory.mkdir()
        first = Security(clock=self.clock, state_dir=directory)
        first.ban(ATTACKER, "x")
        first.close()
        second = Security(clock=self.clock, state_dir=str(directory))
        self.addCleanup(second.close)
        self.assertFalse(second.admit(ATTACKER))

    def test_given_ban_store(self) -> None:
        """
        If given an L{IBanStore}, L{Security} bans into it, admits by it,
        purges and closes it, instead of making its own L{Bans}.
        """
        store = Bans(base=30.0)
        security = Security(clock=self.clock, bans=store)
        self.assertTrue(verifyObject(IBanStore, security.bans))
        self.assertIs(security.bans, store)
        ban = security.ban(ATTACKER, "testing")
        assert ban is not None
        self.assertEqual(ban.duration, 30.0)
        self.assertTrue(store.is_banned(ATTACKER, self.clock.seconds()))
        self.assertFalse(security.admit(ATTACKER))
        self.clock.advance(31)
        security.purge()
        self.assertEqual(len(store), 0)
        self.assertTrue(security.admit(ATTACKER))
        security.close()
        self.assertRaises(sqlite3.ProgrammingError, store.ban, ATTACKER, "x", self.clock.seconds())

    def test_from_config(self) -> None:
        """
        If made from a whole config, L{Security} takes its C{security}
        section, state directory and trusted networks.
        """
        from sipedge.config import Config, SipConfig, StateConfig

        directory = Path(self.mktemp())
        directory.mkdir()
        config = Config(
            sip=SipConfig(trusted=["192.0.2.0/24"]), state=StateConfig(path=str(directory))
        )
        security = Security.from_config(config, self.clock)
        self.addCleanup(security.close)
        self.assertIsNone(security.ban("192.0.2.9", "trusted"))
        self.assertEqual(security.config, SecurityConfig())
        config = attrs.evolve(config, security=SecurityConfig(ban_base=5.0))
        other = Security.from_config(config, self.clock)
        self.addCleanup(other.close)
        ban = other.ban(ATTACKER, "x")
        assert ban is not None
        self.assertEqual(ban.duration, 5.0)


class UserAgentMatcherTests(SynchronousTestCase):
    """Tests for L{UserAgentMatcher}."""

    def test_substrings(self) -> None:
        """If a User-Agent contains a substring, in any case, L{UserAgentMatcher} finds it."""
        matcher = UserAgentMatcher(["friendly-scanner", "sipvicious"])
        self.assertEqual(matcher.match("Friendly-Scanner 1.0"), "Friendly-Scanner")
        self.assertEqual(matcher.match("x SIPVicious"), "SIPVicious")
        self.assertIsNone(matcher.match("Linphone/5.0"))
        self.assertIsNone(UserAgentMatcher().match("anything"))
        self.assertFalse(UserAgentMatcher())

    def test_patterns(self) -> None:
        """If a pattern matches anywhere, case-insensitively, L{UserAgentMatcher} says what."""
        matcher = UserAgentMatcher(patterns=[r"^sip-?scan\b", r"pbx\d{3}"])
        self.assertEqual(matcher.match("SIPSCAN v2"), "SIPSCAN")
        self.assertEqual(matcher.match("My PBX123"), "PBX123")
        self.assertIsNone(matcher.match("a sipscan"))


class AdmissionTests(SynchronousTestCase):
    """The transports' admission hook, fed by L{Security.admit}."""

    def setUp(self) -> None:
        self.reactor = FakeReactor()
        self.addCleanup(lambda: self.assertEqual(self.reactor.getDelayedCalls(), []))
        self.events = capture_log(self)
        self.security = Security(clock=self.reactor)
        self.addCleanup(self.security.close)
        self.security.ban(ATTACKER, "testing")
        self.parsed: list[bytes] = []
        real = udp_module.parse_datagram

        def parse(data: bytes, *args: Any) -> Any:
            self.parsed.append(data)
            return real(data, *args)

        self.patch(udp_module, "parse_datagram", parse)

    def test_udp_banned_never_parsed(self) -> None:
        """
        If a banned source sends a datagram, L{SipDatagramProtocol} drops it
        before the parser and the receiver see it, and counts it; other
        sources' datagrams go through.
        """
        receiver = RecordingReceiver()
        proxy = SipDatagramProtocol(receiver, admission=self.security.admit)
        self.reactor.listenUDP(5060, proxy, "198.51.100.1", MAX_DATAGRAM_SIZE)
        attacker = self.reactor.network.bind(ATTACKER, 5060, DatagramProtocol())
        phone = self.reactor.network.bind(PHONE, 5060, DatagramProtocol())
        attacker.write(OPTIONS, ("198.51.100.1", 5060))
        attacker.write(b"\r\n\r\n", ("198.51.100.1", 5060))
        phone.write(OPTIONS, ("198.51.100.1", 5060))
        self.reactor.network.flush()
        self.assertEqual(self.parsed, [OPTIONS])
        self.assertEqual([flow.remote_host for _, flow in receiver.messages], [PHONE])
        self.assertEqual((proxy.refused, proxy.received, proxy.keepalives), (2, 1, 0))
        self.assertEqual(self.security.stats["admission_refused"], 2)

    def test_udp_default_admits(self) -> None:
        """If no admission hook is given, L{SipDatagramProtocol} admits every source."""
        receiver = RecordingReceiver()
        proxy = SipDatagramProtocol(receiver)
        self.reactor.listenUDP(5060, proxy, "198.51.100.1", MAX_DATAGRAM_SIZE)
        attacker = self.reactor.network.bind(ATTACKER, 5060, DatagramProtocol())
        attacker.write(OPTIONS, ("198.51.100.1", 5060))
        self.reactor.network.flush()
        self.assertEqual((len(receiver.messages), proxy.refused), (1, 0))

    def stream(self, peer: str) -> tuple[SipStreamProtocol, StringTransport, RecordingReceiver]:
        receiver = RecordingReceiver()
        protocol = SipStreamProtocol(receiver, clock=self.reactor, admission=self.security.admit)
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "198.51.100.1", 5060),
            peerAddress=IPv4Address("TCP", peer, 40000),
        )
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
        return protocol, transport, receiver

    def test_stream_banned_mid_connection(self) -> None:
        """
        If the peer of an open connection is banned, L{SipStreamProtocol}
        drops what it sends unparsed, closes the connection, and logs it.
        """
        protocol, transport, receiver = self.stream(PHONE)
        protocol.dataReceived(OPTIONS)
        self.assertEqual(len(receiver.messages), 1)
        self.security.ban(PHONE, "banned while connected")
        protocol.dataReceived(OPTIONS)
        protocol.dataReceived(OPTIONS)
        self.assertEqual(len(receiver.messages), 1)
        self.assertEqual(protocol.refused, 1)
        self.assertTrue(transport.disconnecting)
        [event] = [e for e in self.events if e.get("rule") == "admission"]
        self.assertEqual(event["source"], PHONE)

    def test_stream_default_admits(self) -> None:
        """If no admission hook is given, L{SipStreamProtocol} admits every peer."""
        receiver = RecordingReceiver()
        protocol = SipStreamProtocol(receiver, clock=self.reactor)
        transport = StringTransport(peerAddress=IPv4Address("TCP", ATTACKER, 40000))
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
        protocol.dataReceived(OPTIONS)
        self.assertEqual(len(receiver.messages), 1)

    def manager(self) -> tuple[TransportManager, RecordingReceiver]:
        receiver = RecordingReceiver()
        manager = TransportManager(receiver, self.reactor, admission=self.security.admit)

        def close() -> None:
            d = manager.close()
            self.reactor.flush()
            self.successResultOf(d)

        self.addCleanup(close)
        return manager, receiver

    def connect(self, source: str, data: bytes) -> _Client:
        client = _Client(data)
        self.reactor.connectTCP(
            "198.51.100.1",
            5060,
            ClientFactory.forProtocol(lambda: client),
            bindAddress=(source, 0),
        )
        return client

    def test_manager_refuses_banned_connection(self) -> None:
        """
        If a banned source connects over TCP, the L{TransportManager}
        refuses the connection as it is accepted (nothing is parsed) and
        logs it; others connect and are heard.
        """
        manager, receiver = self.manager()
        manager.listen_tcp("198.51.100.1", 5060)
        banned = self.connect(ATTACKER, OPTIONS)
        fine = self.connect(PHONE, OPTIONS)
        self.reactor.flush()
        self.assertIsNotNone(banned.lost)
        self.assertIsNone(fine.lost)
        self.assertEqual([flow.remote_host for _, flow in receiver.messages], [PHONE])
        self.assertEqual(manager.refused, 1)
        self.assertEqual(len(manager.connections), 1)
        [event] = [e for e in self.events if e.get("rule") == "admission"]
        self.assertEqual((event["source"], event["transport"]), (ATTACKER, "TCP"))

    def test_manager_udp(self) -> None:
        """If the manager has an admission hook, its UDP listeners use it."""
        manager, receiver = self.manager()
        udp = manager.listen_udp("198.51.100.1", 5060)
        attacker = self.reactor.network.bind(ATTACKER, 5060, DatagramProtocol())
        attacker.write(OPTIONS, ("198.51.100.1", 5060))
        self.reactor.flush()
        self.assertEqual((receiver.messages, udp.refused, self.parsed), ([], 1, []))


class _Client(Protocol):
    """A TCP client that writes C{data} once connected."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = reason or Failure(ConnectionDone())


class QuietDropTests(SynchronousTestCase):
    """Drops of a banned source write no log line per packet by default."""

    def test_no_line_per_packet(self) -> None:
        """
        If hot-path debugging is off (the default), refusing packets from a
        banned source logs nothing per packet; it only counts them.
        """
        from twisted.internet.task import Clock

        from sipedge.security import Security
        from sipedge.testing import capture_log

        events = capture_log(self)
        security = Security(clock=Clock())
        self.addCleanup(security.close)
        security.ban("192.0.2.66", "test")
        before = len(events)
        for _ in range(100):
            self.assertFalse(security.admit("192.0.2.66"))
        self.assertEqual(len(events), before)
        self.assertEqual(security.stats["admission_refused"], 100)
