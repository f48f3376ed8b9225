# -*- test-case-name: sipedge.test.test_store -*-
"""
Tests for L{sipedge.store}: bindings, AORs, and the memory and SQLite
location stores, which share one set of behaviour tests.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipedge.error import ConfigError, MessageParseError
from sipedge.flow import Flow
from sipedge.interfaces import ILocationStore
from sipedge.message import parse_sip_uri
from sipedge.store import (
    DATABASE_NAME,
    SCHEMA_VERSION,
    Binding,
    MemoryLocationStore,
    SQLiteLocationStore,
    aor_of,
    same_binding,
)

T = TypeVar("T")

AOR = "sip:alice@example.com"
OTHER_AOR = "sip:bob@example.com"
UDP_FLOW = Flow("UDP", "192.0.2.100", 5060, "198.51.100.7", 40000)
TLS_FLOW = Flow("TLS", "2001:db8::100", 5061, "2001:db8::7", 50123)
INSTANCE = "<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"


def result_of(d: Deferred[T]) -> T:
    """The result of an already-fired Deferred (or raise its failure)."""
    results: list[Any] = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError(f"{d!r} has not fired")
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def binding(contact: str = "sip:alice@192.0.2.1", **kwargs: Any) -> Binding:
    """A binding of L{AOR} with defaults for what a test does not care about."""
    fields: dict[str, Any] = {
        "aor": AOR,
        "contact": contact,
        "expires_at": 3600.0,
        "call_id": "call-1@192.0.2.1",
        "cseq": 1,
    }
    fields.update(kwargs)
    return Binding(**fields)


class AorOfTests(SynchronousTestCase):
    """Tests for L{aor_of}."""

    def test_canonical(self) -> None:
        """
        The AOR keeps scheme and user, lower-cases the host and drops the
        password, port, parameters and headers (RFC 3261 10.3 step 5).
        """
        self.assertEqual(
            aor_of("sip:alice:secret@EXAMPLE.com:5070;user=phone;transport=tcp?x=y"),
            "sip:alice@example.com",
        )

    def test_scheme_kept(self) -> None:
        """A SIPS AOR stays SIPS (scheme compared lower-cased)."""
        self.assertEqual(aor_of("SIPS:alice@example.com"), "sips:alice@example.com")

    def test_user_case_sensitive(self) -> None:
        """The user part keeps its case."""
        self.assertEqual(aor_of("sip:Alice@example.com"), "sip:Alice@example.com")

    def test_user_escapes(self) -> None:
        """
        Escapes of characters that need none are decoded, the others are
        written with upper-case hex, so equivalent users give one key.
        """
        self.assertEqual(aor_of("sip:%61lice@example.com"), "sip:alice@example.com")
        self.assertEqual(aor_of("sip:null-%00-null@example.com"), "sip:null-%00-null@example.com")
        self.assertEqual(aor_of("sip:a%2fb%3A@example.com"), aor_of("sip:a/b%3a@example.com"))
        self.assertEqual(aor_of("sip:%25@example.com"), "sip:%25@example.com")

    def test_no_user(self) -> None:
        """A URI without a user part gives C{scheme:host}."""
        self.assertEqual(aor_of("sip:Example.COM:5060"), "sip:example.com")

    def test_parsed_uri(self) -> None:
        """A parsed SIP URI is accepted as well as text."""
        self.assertEqual(aor_of(parse_sip_uri("sip:bob@[2001:DB8::1]")), "sip:bob@[2001:db8::1]")

    def test_not_sip(self) -> None:
        """A tel or other URI is not an AOR of the location service."""
        error = self.assertRaises(MessageParseError, aor_of, "tel:+15551234567")
        self.assertEqual(error.status_hint, 416)
        self.assertRaises(MessageParseError, aor_of, "isbn:2983792873")


class BindingTests(SynchronousTestCase):
    """Tests for L{Binding} and L{same_binding}."""

    def test_defaults(self) -> None:
        """q defaults to 1, the optional fields to nothing."""
        b = binding()
        self.assertEqual(
            (b.q, b.flow, b.path, b.instance, b.reg_id, b.user_agent, b.received),
            (1.0, None, (), None, None, None, None),
        )

    def test_q_checked(self) -> None:
        """A q outside 0..1 is refused at construction."""
        self.assertRaises(ValueError, binding, q=1.5)
        self.assertRaises(ValueError, binding, q=-0.1)

    def test_expires_at_finite(self) -> None:
        """An infinite or NaN expiry time is refused."""
        self.assertRaises(ValueError, binding, expires_at=float("inf"))
        self.assertRaises(ValueError, binding, expires_at=float("nan"))

    def test_expires_in(self) -> None:
        """
        C{expires_in} rounds the time left to whole seconds, is at least 1
        while the binding lives, and 0 once it has expired.
        """
        b = binding(expires_at=100.0)
        self.assertEqual(b.expires_in(0.0), 100)
        self.assertEqual(b.expires_in(99.9), 1)
        self.assertEqual(b.expires_in(100.0), 0)
        self.assertEqual(b.expires_in(200.0), 0)
        self.assertTrue(b.is_expired(100.0))
        self.assertFalse(b.is_expired(99.9))

    def test_same_binding_uri_rules(self) -> None:
        """
        Without an instance, bindings match by the RFC 3261 19.1.4 URI
        comparison: host case and escapes of unreserved characters do not
        matter, the user's case and a transport parameter do.
        """
        old = binding("sip:alice@host.example.com")
        self.assertTrue(same_binding(old, binding("sip:%61lice@HOST.example.com")))
        self.assertFalse(same_binding(old, binding("sip:Alice@host.example.com")))
        self.assertFalse(same_binding(old, binding("sip:alice@host.example.com;transport=tcp")))
        self.assertFalse(same_binding(old, binding("sip:alice@host.example.com", aor=OTHER_AOR)))

    def test_same_binding_escnull(self) -> None:
        """C{sip:%00@h} and C{sip:%00%00@h} are two bindings (RFC 4475 escnull)."""
        self.assertFalse(
            same_binding(
                binding("sip:%00@host5.example.com"), binding("sip:%00%00@host5.example.com")
            )
        )

    def test_same_binding_instance(self) -> None:
        """
        A binding stored with an instance matches by instance and reg-id
        only (RFC 5626 section 6), whatever the contact URI.
        """
        old = binding("sip:alice@192.0.2.1", instance=INSTANCE, reg_id=1)
        self.assertTrue(
            same_binding(old, binding("sip:alice@192.0.2.99", instance=INSTANCE, reg_id=1))
        )
        self.assertFalse(
            same_binding(old, binding("sip:alice@192.0.2.1", instance=INSTANCE, reg_id=2))
        )
        self.assertFalse(same_binding(old, binding("sip:alice@192.0.2.1")))

    def test_same_binding_unparsable(self) -> None:
        """Contacts that do not parse match only when their text is equal."""
        self.assertTrue(same_binding(binding("sip:bad uri"), binding("sip:bad uri")))
        self.assertFalse(same_binding(binding("sip:bad uri"), binding("sip:alice@192.0.2.1")))


if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object


class LocationStoreTestsMixin(_TestCase):
    """Behaviour every L{ILocationStore} shares; mixed into a test case."""

    def make_store(self) -> Any:
        raise NotImplementedError()

    def setUp(self) -> None:
        self.store = self.make_store()
        self.addCleanup(self.store.close)

    def update(self, *bindings: Binding, now: float = 0.0, aor: str = AOR) -> list[Binding]:
        return result_of(self.store.update(aor, bindings, now))

    def lookup(self, aor: str = AOR, now: float = 0.0) -> list[Binding]:
        return result_of(self.store.lookup(aor, now))

    def test_interface(self) -> None:
        """The store provides L{ILocationStore}."""
        self.assertTrue(verifyObject(ILocationStore, self.store))

    def test_unknown_aor(self) -> None:
        """An AOR never registered has no bindings."""
        self.assertEqual(self.lookup(), [])

    def test_add(self) -> None:
        """An added binding is returned by the update and by lookups."""
        b = binding()
        self.assertEqual(self.update(b), [b])
        self.assertEqual(self.lookup(), [b])

    def test_several_contacts(self) -> None:
        """An AOR has as many bindings as distinct contacts, added at once or not."""
        a, b, c = binding("sip:a@192.0.2.1"), binding("sip:b@192.0.2.1"), binding("sip:c@192.0.2.1")
        self.update(a, b)
        self.update(c)
        self.assertEqual(self.lookup(), [a, b, c])

    def test_aors_apart(self) -> None:
        """Bindings of one AOR are not bindings of another."""
        a = binding()
        b = binding(aor=OTHER_AOR)
        self.update(a)
        self.update(b, aor=OTHER_AOR)
        self.assertEqual(self.lookup(), [a])
        self.assertEqual(self.lookup(OTHER_AOR), [b])

    def test_wrong_aor(self) -> None:
        """Updating an AOR with another AOR's binding fails, changing nothing."""
        d = self.store.update(AOR, [binding(aor=OTHER_AOR)], 0.0)
        self.assertRaises(ValueError, result_of, d)
        self.assertEqual(self.lookup(OTHER_AOR), [])

    def test_refresh(self) -> None:
        """A binding of the same contact replaces the stored one."""
        self.update(binding(expires_at=100.0, cseq=1))
        fresh = binding(expires_at=500.0, cseq=2)
        self.assertEqual(self.update(fresh, now=50.0), [fresh])
        self.assertEqual(self.lookup(now=200.0), [fresh])

    def test_refresh_equivalent_uri(self) -> None:
        """
        An equivalent contact URI (RFC 3261 19.1.4) refreshes the binding,
        and the new text is kept.
        """
        self.update(binding("sip:alice@HOST.example.com"))
        fresh = binding("sip:%61lice@host.example.com", cseq=2)
        self.update(fresh)
        self.assertEqual([b.contact for b in self.lookup()], [fresh.contact])

    def test_remove(self) -> None:
        """A binding expired at C{now} removes the one it matches."""
        keep = binding("sip:keep@192.0.2.1")
        self.update(keep, binding())
        self.assertEqual(self.update(binding(expires_at=10.0), now=10.0), [keep])
        self.assertEqual(self.lookup(), [keep])

    def test_remove_unknown(self) -> None:
        """Removing a binding that does not exist changes nothing."""
        self.assertEqual(self.update(binding(expires_at=0.0)), [])
        self.assertEqual(self.lookup(), [])

    def test_one_update_in_order(self) -> None:
        """The bindings of one update apply in order: add then remove leaves nothing."""
        self.assertEqual(
            self.update(binding(expires_at=100.0), binding(expires_at=0.0)), []
        )
        self.assertEqual(self.update(binding(expires_at=0.0), b := binding()), [b])

    def test_remove_all(self) -> None:
        """C{remove_all} (Contact: *) removes every binding of one AOR only."""
        other = binding(aor=OTHER_AOR)
        self.update(other, aor=OTHER_AOR)
        self.update(binding("sip:a@192.0.2.1"), binding("sip:b@192.0.2.1"))
        self.assertIsNone(result_of(self.store.remove_all(AOR)))
        self.assertEqual(self.lookup(), [])
        self.assertEqual(self.lookup(OTHER_AOR), [other])
        self.assertIsNone(result_of(self.store.remove_all(AOR)))

    def test_q_order(self) -> None:
        """Lookups list the highest q first (RFC 3261 16.6)."""
        low = binding("sip:a@192.0.2.1", q=0.1)
        high = binding("sip:b@192.0.2.1", q=1.0)
        mid = binding("sip:c@192.0.2.1", q=0.5)
        self.assertEqual(self.update(low, high, mid), [high, mid, low])
        self.assertEqual(self.lookup(), [high, mid, low])

    def test_lookup_hides_expired(self) -> None:
        """A lookup never returns a binding expired at C{now}, purged or not."""
        short = binding("sip:short@192.0.2.1", expires_at=60.0)
        long = binding("sip:long@192.0.2.1", expires_at=3600.0)
        self.update(short, long)
        self.assertEqual(self.lookup(now=59.5), [long, short])
        self.assertEqual(self.lookup(now=60.0), [long])
        self.assertEqual(self.update(binding("sip:x@192.0.2.1", expires_at=0), now=61.0), [long])

    def test_expire(self) -> None:
        """C{expire} removes what expired at C{now}, in every AOR, and counts it."""
        self.update(binding("sip:a@192.0.2.1", expires_at=60.0), binding("sip:b@192.0.2.1"))
        self.update(binding(aor=OTHER_AOR, expires_at=30.0), aor=OTHER_AOR)
        self.assertEqual(result_of(self.store.expire(29.0)), 0)
        self.assertEqual(result_of(self.store.expire(60.0)), 2)
        self.assertEqual(result_of(self.store.expire(60.0)), 0)
        self.assertEqual([b.contact for b in self.lookup()], ["sip:b@192.0.2.1"])
        self.assertEqual(self.lookup(OTHER_AOR), [])

    def test_counts(self) -> None:
        """
        C{counts} says how many AORs have a live binding and how many
        bindings live at C{now}, without what expired.
        """
        self.assertEqual(self.store.counts(0.0), (0, 0))
        self.update(binding("sip:a@192.0.2.1", expires_at=60.0), binding("sip:b@192.0.2.1"))
        self.update(binding(aor=OTHER_AOR, expires_at=30.0), aor=OTHER_AOR)
        self.assertEqual(self.store.counts(0.0), (2, 3))
        self.assertEqual(self.store.counts(30.0), (1, 2))
        self.assertEqual(self.store.counts(60.0), (1, 1))

    def test_everything_remembered(self) -> None:
        """
        Every field comes back as stored: the flow the REGISTER arrived on
        (so requests reach the phone over the same connection), Path, the
        instance and reg-id, User-Agent and received.
        """
        for flow in (UDP_FLOW, TLS_FLOW, None):
            b = binding(
                "sip:alice@10.0.0.5:5062;transport=tcp?Route=%3Csip:sip.example.com%3E",
                expires_at=1234.5,
                q=0.25,
                call_id="843817637684230@998sdasdh09",
                cseq=2**32 - 1,
                flow=flow,
                path=("<sip:edge1.example.com;lr>", "<sip:edge2.example.com;lr;ob>"),
                instance=INSTANCE,
                reg_id=1,
                user_agent="Phone/1.0 (\u00e9t\u00e9)",
                received="sip:198.51.100.7:40000;transport=udp",
            )
            self.update(b)
            self.assertEqual(self.lookup(), [b])

    def test_undecodable_text(self) -> None:
        """
        Text holding lone surrogates (undecodable octets the parser kept
        with C{surrogateescape}) is kept as it is.
        """
        b = binding(call_id="id-\udcff", path=("<sip:\udcfe@p>",), user_agent="UA \udc80")
        self.update(b)
        self.assertEqual(self.lookup(), [b])

    def test_escnull(self) -> None:
        """The two contacts of RFC 4475 escnull are two bindings."""
        a = binding("sip:%00@host5.example.com")
        b = binding("sip:%00%00@host5.example.com")
        self.update(a, b)
        self.assertCountEqual(self.lookup(), [a, b])

    def test_instance_reg_id(self) -> None:
        """
        Bindings with an instance are replaced by instance and reg-id (RFC
        5626): two flows of one instance are two bindings.
        """
        first = binding("sip:alice@192.0.2.1", instance=INSTANCE, reg_id=1, flow=UDP_FLOW)
        second = binding("sip:alice@192.0.2.1", instance=INSTANCE, reg_id=2, flow=TLS_FLOW)
        self.update(first, second)
        self.assertEqual(self.lookup(), [first, second])
        moved = binding("sip:alice@192.0.2.77", instance=INSTANCE, reg_id=1, cseq=2)
        self.update(moved)
        self.assertEqual(self.lookup(), [second, moved])


class MemoryLocationStoreTests(LocationStoreTestsMixin, SynchronousTestCase):
    """Tests for L{MemoryLocationStore}."""

    def make_store(self) -> MemoryLocationStore:
        return MemoryLocationStore()


class SQLiteLocationStoreTests(LocationStoreTestsMixin, SynchronousTestCase):
    """Tests for L{SQLiteLocationStore}."""

    def make_store(self) -> SQLiteLocationStore:
        self.path = self.mktemp()
        return SQLiteLocationStore(self.path)

    def reopen(self) -> None:
        self.store.close()
        self.store = SQLiteLocationStore(self.path)
        self.addCleanup(self.store.close)

    def test_persistence(self) -> None:
        """Bindings survive closing and reopening the file (a restart)."""
        a = binding("sip:a@192.0.2.1", flow=UDP_FLOW, q=0.5)
        b = binding("sip:b@192.0.2.1", flow=TLS_FLOW, path=("<sip:p.example.com;lr>",))
        other = binding(aor=OTHER_AOR, expires_at=10.0)
        self.update(a, b)
        self.update(other, aor=OTHER_AOR)
        self.reopen()
        self.assertEqual(self.lookup(), [b, a])
        self.assertEqual(self.lookup(OTHER_AOR), [other])
        self.assertEqual(result_of(self.store.expire(10.0)), 1)
        self.reopen()
        self.assertEqual(self.lookup(OTHER_AOR), [])

    def test_schema_version(self) -> None:
        """A new file gets the schema and a version table holding its version."""
        self.assertEqual(self.store.schema_version, SCHEMA_VERSION)
        self.store.close()
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("SELECT version FROM schema_version").fetchall(), [(1,)])
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        self.assertEqual(tables, {"schema_version", "bindings"})
        self.store = SQLiteLocationStore(self.path)
        self.assertEqual(self.store.schema_version, SCHEMA_VERSION)

    def test_wal(self) -> None:
        """The file is in WAL mode, so readers do not block the writer."""
        mode = self.store._db.execute("PRAGMA journal_mode").fetchone()[0]
        self.assertEqual(mode, "wal")

    def test_newer_schema(self) -> None:
        """A file written by a newer schema is refused with a ConfigError."""
        self.store.close()
        db = sqlite3.connect(self.path)
        with db:
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        db.close()
        error = self.assertRaises(ConfigError, SQLiteLocationStore, self.path)
        self.assertIn("schema version 2", str(error))
        self.assertIn(self.path, str(error))

    def test_not_a_database(self) -> None:
        """A file that is not an SQLite database is refused with a ConfigError."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"this is not a database, just some text" * 100)
        error = self.assertRaises(ConfigError, SQLiteLocationStore, path)
        self.assertIn(path, str(error))

    def test_closed(self) -> None:
        """Calls after C{close} fail their Deferred rather than raise."""
        self.store.close()
        d = self.store.lookup(AOR, 0.0)
        self.assertIsInstance(self.failureResultOf(d).value, sqlite3.ProgrammingError)

    def test_failed_update_rolls_back(self) -> None:
        """An update that fails half-way leaves the stored bindings as they were."""
        a = binding("sip:a@192.0.2.1")
        self.update(a)
        bad = attrs.evolve(binding("sip:b@192.0.2.1"), flow=object())  # type: ignore[arg-type]
        self.failureResultOf(self.store.update(AOR, [binding(expires_at=0.0), bad], 0.0))
        self.assertEqual(self.lookup(), [a])

    def test_in_state_directory(self) -> None:
        """C{in_state_directory} opens the location file in that directory."""
        directory = self.mktemp()
        os.mkdir(directory)
        store = SQLiteLocationStore.in_state_directory(directory)
        self.addCleanup(store.close)
        self.assertEqual(store.path, os.path.join(directory, DATABASE_NAME))
        self.assertTrue(os.path.exists(store.path))


# -- the SQLite store agrees with the memory store ---------------------------

_AORS = (AOR, OTHER_AOR)
_CONTACTS = (
    "sip:alice@192.0.2.1",
    "sip:ALICE@192.0.2.1",
    "sip:%61lice@192.0.2.1",
    "sip:alice@192.0.2.1;transport=tcp",
    "sip:alice@192.0.2.1;foo=1",
    "sip:alice@192.0.2.1;foo=2",
    "sip:%00@host5.example.com",
    "sip:%00%00@host5.example.com",
    "sip:alice@[2001:db8::1]:5070",
    "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    "tel:+15551234567",
)
_contact = st.fixed_dictionaries(
    {
        "contact": st.sampled_from(_CONTACTS),
        "expires": st.sampled_from((0, 0.5, 1, 30, 60, 3600)),
        "q": st.sampled_from((1.0, 0.5, 0.0, 0.123)),
        "flow": st.sampled_from((None, UDP_FLOW, TLS_FLOW)),
        "outbound": st.sampled_from((None, (INSTANCE, None), (INSTANCE, 1), (INSTANCE, 2))),
    }
)


class _StoresAgree(RuleBasedStateMachine):
    """
    Drives a memory store and an SQLite store alike; their answers must
    agree. A second SQLite store on the same file (another worker) writes
    too, and both SQLite stores must see every write at once (their
    look-ups are cached while nothing commits: L{sipedge.store._wal}).
    """

    make_path: Callable[[], str]

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.memory = MemoryLocationStore()
        self.path = self.make_path()
        self.sqlite = SQLiteLocationStore(self.path)
        self.other = SQLiteLocationStore(self.path)
        self.cseq = 0

    def teardown(self) -> None:
        self.sqlite.close()
        self.other.close()

    def both(self, method: str, *args: Any, other: bool = False) -> Any:
        mine = result_of(getattr(self.memory, method)(*args))
        store = self.other if other else self.sqlite
        theirs = result_of(getattr(store, method)(*args))
        assert mine == theirs, (method, mine, theirs)
        return mine

    @rule(
        aor=st.sampled_from(_AORS),
        contacts=st.lists(_contact, min_size=1, max_size=3),
        call_id=st.sampled_from(("c1", "c2")),
        other=st.booleans(),
    )
    def register(
        self, aor: str, contacts: list[dict[str, Any]], call_id: str, other: bool
    ) -> None:
        """A REGISTER (through either worker): add, refresh or (expires 0) remove bindings."""
        now = self.clock.seconds()
        self.cseq += 1
        bindings = []
        for c in contacts:
            instance, reg_id = c["outbound"] or (None, None)
            bindings.append(
                Binding(
                    aor=aor,
                    contact=c["contact"],
                    expires_at=now + c["expires"],
                    q=c["q"],
                    call_id=call_id,
                    cseq=self.cseq,
                    flow=c["flow"],
                    instance=instance,
                    reg_id=reg_id,
                )
            )
        self.both("update", aor, bindings, now, other=other)

    @rule(aor=st.sampled_from(_AORS), other=st.booleans())
    def remove_all(self, aor: str, other: bool) -> None:
        """Contact: * (through either worker)."""
        self.both("remove_all", aor, other=other)

    @rule(seconds=st.sampled_from((0.25, 1, 29.5, 30, 60, 1000, 3600)))
    def advance(self, seconds: float) -> None:
        """Time passes."""
        self.clock.advance(seconds)

    @rule()
    def expire(self) -> None:
        """The periodic purge."""
        self.both("expire", self.clock.seconds())

    @rule()
    def restart(self) -> None:
        """The SQLite store is closed and opened again."""
        self.sqlite.close()
        self.sqlite = SQLiteLocationStore(self.path)

    @invariant()
    def same_lookups(self) -> None:
        for aor in _AORS:
            self.both("lookup", aor, self.clock.seconds())
            self.both("lookup", aor, self.clock.seconds(), other=True)


class StoresAgreeTests(SynchronousTestCase):
    """The SQLite store behaves as the memory store."""

    def test_random_operations(self) -> None:
        """
        Any sequence of register, refresh, remove, wildcard, expire,
        restart and clock steps gives the same answers from both stores.
        """
        machine = type("StoresAgree", (_StoresAgree,), {"make_path": staticmethod(self.mktemp)})
        run_state_machine_as_test(
            machine, settings=settings(max_examples=60, stateful_step_count=25)
        )
