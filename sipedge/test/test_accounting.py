# -*- test-case-name: sipedge.test.test_accounting -*-
"""
Tests for L{sipedge.accounting}: the call recorder on a Clock, the JSON-lines
writer's thread, C{[accounting]}, and a SIPp call through the real
C{twistd sipedge}.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from sipedge.accounting import CallRecorder, JsonLinesWriter
from sipedge.config import load_config, parse_config
from sipedge.error import ConfigError
from sipedge.interfaces import IMessageTap, IProxyObserver
from sipedge.media import DirectionStats, MediaMode, SessionEnd, SessionStats
from sipedge.message import parse_datagram
from sipedge.testing import free_port, sipp_counter, start_with_sipp
from sipedge.transport import Flow

CALLER_FLOW = Flow("UDP", "198.51.100.1", 5060, "192.0.2.10", 5062)
CALLEE_FLOW = Flow("UDP", "198.51.100.1", 5060, "192.0.2.20", 5064)


def _message(first: str, *headers: str, from_tag: str = "a1", to_tag: str | None = None,
             cseq: str = "1 INVITE", vias: int = 2) -> Any:
    to = "<sip:bob@example.test>" + (f";tag={to_tag}" if to_tag else "")
    via = "".join(
        f"Via: SIP/2.0/UDP 192.0.2.{10 + i}:5062;branch=z9hG4bK-{i}-{cseq.replace(' ', '')}\r\n"
        for i in range(vias)
    )
    text = (
        f"{first}\r\n{via}Max-Forwards: 70\r\n"
        f"From: \"Alice\" <sip:alice@example.test>;tag={from_tag}\r\nTo: {to}\r\n"
        f"Call-ID: call-1@192.0.2.10\r\nCSeq: {cseq}\r\n"
        + "".join(h + "\r\n" for h in headers)
        + "Content-Length: 0\r\n\r\n"
    )
    return parse_datagram(text.encode())


class _Context:
    def __init__(self, request: Any, identity: str | None) -> None:
        self.original = request
        self.identity = identity


class RecorderTests(SynchronousTestCase):
    """L{CallRecorder} on a L{Clock}."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.records: list[dict[str, Any]] = []
        self.recorder = CallRecorder(self.records.append, self.clock, max_calls=3,
                                     max_age=3600)

    def invite(self, identity: str | None = "alice@example.test") -> Any:
        invite = _message("INVITE sip:bob@example.test SIP/2.0")
        self.recorder.message_in(invite, CALLER_FLOW)
        self.recorder.request_decided(_Context(invite, identity), object())
        return invite

    def test_interfaces(self) -> None:
        """It is a message tap and a proxy observer."""
        self.assertTrue(verifyObject(IMessageTap, self.recorder))
        self.assertTrue(verifyObject(IProxyObserver, self.recorder))

    def test_answered_call(self) -> None:
        """
        An answered call is written when it ends: parties, user, source,
        start, answer, end, duration, final status, and who hung up.
        """
        self.invite()
        self.clock.advance(2)
        self.recorder.message_out(
            _message("SIP/2.0 180 Ringing", to_tag="b1", vias=1), CALLER_FLOW)
        self.clock.advance(3)
        ok = _message("SIP/2.0 200 OK", to_tag="b1", vias=1)
        self.recorder.message_out(ok, CALLER_FLOW)
        self.recorder.message_out(ok, CALLER_FLOW)  # a retransmission
        self.assertEqual(self.records, [])
        self.clock.advance(60)
        bye = _message("BYE sip:alice@192.0.2.10 SIP/2.0", from_tag="b1", to_tag="a1",
                       cseq="1 BYE")
        self.recorder.message_in(bye, CALLEE_FLOW)
        [record] = self.records
        self.assertEqual(record["caller"], "sip:alice@example.test")
        self.assertEqual(record["callee"], "sip:bob@example.test")
        self.assertEqual(record["user"], "alice@example.test")
        self.assertEqual(record["source"], "192.0.2.10:5062")
        self.assertEqual(record["start"], "2027-01-15T08:00:00.000+00:00")
        self.assertEqual(record["answer"], "2027-01-15T08:00:05.000+00:00")
        self.assertEqual(record["end"], "2027-01-15T08:01:05.000+00:00")
        self.assertEqual((record["duration"], record["status"]), (60.0, 200))
        self.assertEqual((record["ended_by"], record["reason"]), ("callee", "bye"))
        self.assertEqual(len(self.recorder), 0)
        json.dumps(record)

    def test_caller_hangs_up(self) -> None:
        """A BYE with the caller's From tag was sent by the caller."""
        self.invite(identity=None)
        self.recorder.message_out(_message("SIP/2.0 200 OK", to_tag="b1", vias=1), CALLER_FLOW)
        self.recorder.message_in(
            _message("BYE sip:bob@192.0.2.20 SIP/2.0", to_tag="b1", cseq="2 BYE"), CALLER_FLOW)
        [record] = self.records
        self.assertEqual((record["ended_by"], record["user"]), ("caller", None))

    def test_proxy_ends_call(self) -> None:
        """A BYE sipedge sends itself (one Via, a Reason) ends the call by the proxy."""
        self.invite()
        self.recorder.message_out(_message("SIP/2.0 200 OK", to_tag="b1", vias=1), CALLER_FLOW)
        bye = _message("BYE sip:alice@192.0.2.10 SIP/2.0", 'Reason: SIP;cause=200;text="media'
                       ' timeout"', from_tag="b1", to_tag="a1", cseq="9 BYE", vias=1)
        self.recorder.message_out(bye, CALLER_FLOW)
        [record] = self.records
        self.assertEqual(record["ended_by"], "proxy")
        self.assertIn("media timeout", record["reason"])

    def test_failed_call(self) -> None:
        """A call that fails is written with its final status and reason at once."""
        self.invite()
        self.clock.advance(4)
        self.recorder.message_out(
            _message("SIP/2.0 486 Busy Here", to_tag="b1", vias=1), CALLER_FLOW)
        [record] = self.records
        self.assertEqual((record["status"], record["reason"], record["answer"]),
                         (486, "Busy Here", None))
        self.assertEqual(record["ended_by"], None)
        self.assertEqual(record["end"], "2027-01-15T08:00:04.000+00:00")

    def test_challenged(self) -> None:
        """
        A 407 (or 401) to the INVITE writes nothing: the INVITE sent again
        with credentials starts the call's record, timed from then.
        """
        self.invite(identity=None)
        self.recorder.message_out(
            _message("SIP/2.0 407 Proxy Authentication Required", to_tag="p1", vias=1),
            CALLER_FLOW)
        self.assertEqual((self.records, len(self.recorder)), ([], 0))
        self.clock.advance(1)
        self.invite()
        self.recorder.message_out(_message("SIP/2.0 200 OK", to_tag="b1", vias=1), CALLER_FLOW)
        self.recorder.message_in(
            _message("BYE sip:bob@192.0.2.20 SIP/2.0", to_tag="b1", cseq="2 BYE"), CALLER_FLOW)
        [record] = self.records
        self.assertEqual((record["status"], record["user"]), (200, "alice@example.test"))
        self.assertEqual(record["start"], "2027-01-15T08:00:01.000+00:00")

    def test_retransmitted_invite(self) -> None:
        """A retransmitted INVITE does not start the call again."""
        self.invite()
        self.clock.advance(1)
        self.invite()
        self.assertEqual(len(self.recorder), 1)

    def test_bounded(self) -> None:
        """
        Past C{max_calls} the oldest call in progress is dropped (counted);
        one older than C{max_age} is written as ended by timeout.
        """
        for n in range(4):
            self.recorder.message_in(parse_datagram(_raw_invite(f"call-{n}")), CALLER_FLOW)
        self.assertEqual((len(self.recorder), self.recorder.dropped), (3, 1))
        self.clock.advance(3600)
        self.recorder.message_in(parse_datagram(_raw_invite("late")), CALLER_FLOW)
        self.assertEqual([r["ended_by"] for r in self.records], ["timeout"] * 3)
        self.assertEqual(len(self.recorder), 1)

    def test_flush(self) -> None:
        """Stopping writes the calls still up as ended by the shutdown."""
        self.invite()
        self.recorder.flush()
        [record] = self.records
        self.assertEqual(record["ended_by"], "shutdown")


class _Relay:
    """The observing and listing part of an L{sipedge.interfaces.IMediaRelay}."""

    def __init__(self) -> None:
        self.live: dict[str, SessionStats] = {}
        self.observers: list[Any] = []
        self.pending: Deferred[Any] | None = None

    def add_observer(self, observer: Any) -> None:
        self.observers.append(observer)

    def remove_observer(self, observer: Any) -> None:
        self.observers.remove(observer)

    def sessions(self) -> Deferred[Any]:
        if self.pending is not None:
            return self.pending
        return succeed(dict(self.live))

    def start(self, key: str) -> None:
        self.live[key] = _stats(key, 0, 0)

    def end(self, key: str, a: int, b: int, reason: str = "released") -> None:
        self.live.pop(key, None)
        for observer in list(self.observers):
            observer(SessionEnd(key, reason, _stats(key, a, b)))


def _stats(key: str, a: int, b: int) -> SessionStats:
    return SessionStats(
        session_key=key, state="answered", a_mode=MediaMode.PLAIN, b_mode=MediaMode.PLAIN,
        created=0.0, answered=1.0, last_activity=2.0, ports=(20000, 20002),
        a_to_b=DirectionStats(a, a * 172, {"foreign-source": 2} if a else {}),
        b_to_a=DirectionStats(b, b * 172),
    )


class MediaRecordTests(SynchronousTestCase):
    """L{CallRecorder} with the media relay: each call's relay counts in its record."""

    KEY = "call-1@192.0.2.10;a1"

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.records: list[dict[str, Any]] = []
        self.relay = _Relay()
        relay: Any = self.relay
        self.recorder = CallRecorder(self.records.append, self.clock, relay=relay,
                                     media_grace=5)
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))

    def answered(self) -> None:
        invite = _message("INVITE sip:bob@example.test SIP/2.0")
        self.recorder.message_in(invite, CALLER_FLOW)
        self.recorder.message_out(_message("SIP/2.0 200 OK", to_tag="b1", vias=1), CALLER_FLOW)

    def bye(self) -> None:
        self.recorder.message_in(
            _message("BYE sip:bob@192.0.2.20 SIP/2.0", to_tag="b1", cseq="2 BYE"), CALLER_FLOW)

    def test_waits_for_session_end(self) -> None:
        """
        A call whose relay session is live when the BYE comes is written
        when the session ends, with its packets, bytes and drops each way.
        """
        self.answered()
        self.relay.start(self.KEY)
        self.bye()
        self.assertEqual(self.records, [])
        self.relay.end(self.KEY, 250, 248)
        [record] = self.records
        self.assertEqual(record["media"], {
            "sessions": 1,
            "a_to_b": {"packets": 250, "bytes": 43000, "dropped": 2,
                       "drops": {"foreign-source": 2}},
            "b_to_a": {"packets": 248, "bytes": 42656, "dropped": 0, "drops": {}},
        })
        self.assertEqual(record["ended_by"], "caller")

    def test_sessions_summed(self) -> None:
        """
        Every session of the call counts (a re-offer's new session, one
        that ended before the call), another call's sessions do not; a call
        with no live session left is written at once.
        """
        self.answered()
        self.relay.end(self.KEY, 100, 90, reason="replaced")
        self.relay.end("call-1@192.0.2.10;other-tag", 1000, 1000)
        self.relay.end("call-2@192.0.2.10;a1", 1000, 1000)
        self.relay.end(self.KEY + ";1", 50, 40)
        self.bye()
        [record] = self.records
        self.assertEqual(record["media"]["sessions"], 2)
        self.assertEqual(record["media"]["a_to_b"]["packets"], 150)
        self.assertEqual(record["media"]["b_to_a"]["packets"], 130)

    def test_not_anchored(self) -> None:
        """A call the relay never carried is written at once, its media C{null}."""
        self.answered()
        self.bye()
        [record] = self.records
        self.assertIsNone(record["media"])

    def test_grace(self) -> None:
        """
        A session that does not end within C{media_grace} seconds of the
        call's end leaves the record written without it.
        """
        self.answered()
        self.relay.start(self.KEY)
        self.bye()
        self.clock.advance(4.9)
        self.assertEqual(self.records, [])
        self.clock.advance(0.1)
        [record] = self.records
        self.assertIsNone(record["media"])
        self.relay.end(self.KEY, 1, 1)  # too late: nothing more is written
        self.assertEqual(len(self.records), 1)

    def test_relay_cannot_say(self) -> None:
        """A relay whose session list fails (a remote relay gone) leaves the record as it is."""
        self.answered()
        self.relay.pending = Deferred()
        self.bye()
        self.assertEqual(self.records, [])
        self.relay.pending.errback(ConnectionError("relay gone"))
        [record] = self.records
        self.assertIsNone(record["media"])

    def test_flush(self) -> None:
        """
        Stopping writes a call waiting for its media at once, and stops
        observing the relay.
        """
        self.answered()
        self.relay.start(self.KEY)
        self.bye()
        self.recorder.flush()
        self.assertEqual(len(self.records), 1)
        self.assertEqual(self.relay.observers, [])


def _raw_invite(call_id: str) -> bytes:
    return (
        "INVITE sip:bob@example.test SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK-x\r\nMax-Forwards: 70\r\n"
        "From: <sip:alice@example.test>;tag=a1\r\nTo: <sip:bob@example.test>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class WriterTests(TestCase):
    """L{JsonLinesWriter}, with its thread on the real reactor."""

    def test_lines(self) -> Deferred[None]:
        """Records become one JSON line each, appended; stopping waits for the writes."""
        path = Path(self.mktemp())
        path.write_text('{"earlier": true}\n')
        writer = JsonLinesWriter(path, global_reactor)
        writer.start()
        writer({"call_id": "a", "status": 200})
        writer({"call_id": "b", "status": 486})

        def check(_: object) -> None:
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            self.assertEqual(lines, [{"earlier": True}, {"call_id": "a", "status": 200},
                                     {"call_id": "b", "status": 486}])
            self.assertEqual(writer.written, 2)

        return writer.stop().addCallback(check)

    def test_locked_while_appending(self) -> Deferred[None]:
        """
        A batch is appended under an exclusive lock on the file (the
        workers of one sipedge append to the same file): while another
        writer holds it, the batch waits, and lands after that writer's
        lines, never inside them.
        """
        path = Path(self.mktemp())
        path.write_text("")
        fds = [os.open(path, os.O_WRONLY | os.O_APPEND)]
        self.addCleanup(lambda: list(map(os.close, fds)))  # the lock, whatever happens
        fcntl.flock(fds[0], fcntl.LOCK_EX)
        writer = JsonLinesWriter(path, global_reactor)
        writer.start()
        writer({"call_id": "a"})

        def other_writer_ends(_: object) -> Deferred[None]:
            os.write(fds[0], b'{"other": 1}\n')
            os.write(fds[0], b'{"other": 2}\n')
            os.close(fds.pop())
            return writer.stop()

        def check(_: object) -> None:
            lines = [json.loads(line) for line in path.read_text().splitlines()]
            self.assertEqual(lines, [{"other": 1}, {"other": 2}, {"call_id": "a"}])

        d = deferLater(global_reactor, 0.3, lambda: None)
        return d.addCallback(other_writer_ends).addCallback(check)

    def test_unwritable(self) -> Deferred[None]:
        """A file that cannot be written is logged and counted, never raised."""
        path = Path(self.mktemp()) / "missing-directory" / "calls.jsonl"
        writer = JsonLinesWriter(path, global_reactor)
        writer.start()
        writer({"call_id": "a"})

        def check(_: object) -> None:
            self.assertEqual((writer.errors, writer.written), (1, 0))
            self.flushLoggedErrors()

        return writer.stop().addCallback(check)


class ConfigTests(SynchronousTestCase):
    """C{[accounting]}."""

    def test_path(self) -> None:
        """C{path} is resolved against the configuration file's directory; absent: off."""
        self.assertIsNone(parse_config({}).accounting.path)
        directory = Path(self.mktemp()).absolute()
        directory.mkdir()
        (directory / "sipedge.toml").write_text('[accounting]\npath = "calls.jsonl"\n')
        config = load_config(directory / "sipedge.toml")
        self.assertEqual(config.accounting.path, directory / "calls.jsonl")

    def test_errors(self) -> None:
        """A bad value names its key."""
        for bad in ({"path": 5}, {"path": ""}, {"file": "x"}):
            error = self.assertRaises(ConfigError, parse_config, {"accounting": bad})
            self.assertIn("accounting.", str(error))


class EndToEndTests(SynchronousTestCase):
    """The real C{twistd sipedge} writes a record for a SIPp call."""

    def test_sipp_call(self) -> None:
        """
        A call from SIPp (a trusted source) to a SIPp UAS through sipedge,
        hung up by the caller after about a second, leaves one record: the
        parties, status 200, answer and end a second or so apart, ended by
        the caller.
        """
        work, proxy, sipp = start_with_sipp(self, """
[sip]
domains = ["sipedge.test"]
listen = ["udp:127.0.0.1:0"]
trusted = ["127.0.0.10/32"]

[accounting]
path = "calls.jsonl"
""")
        uas_port = free_port()
        sipp.start("uas.xml", "-m", 1, port=uas_port, timeout=30)
        result = sipp.run(
            "uac.xml", f"127.0.0.1:{proxy.ports['UDP']}", "-s", "service",
            "-key", "domain", f"127.0.0.1:{uas_port}", "-d", 1000, "-m", 1,
            local_ip="127.0.0.10", timeout=30,
        )
        self.assertEqual(sipp_counter(result.stdout, "Successful call"), 1, result.stdout[-1500:])
        proxy.stop()  # the writer drains on stop
        [line] = (work / "calls.jsonl").read_text().splitlines()
        record = json.loads(line)
        self.assertEqual(record["callee"], f"sip:service@127.0.0.1:{uas_port}")
        self.assertTrue(record["caller"].startswith("sip:sipp@127.0.0.10"), record)
        self.assertEqual((record["status"], record["ended_by"]), (200, "caller"))
        self.assertTrue(record["source"].startswith("127.0.0.10:"), record)
        self.assertGreater(record["duration"], 0.5)
        self.assertLess(record["duration"], 10)
