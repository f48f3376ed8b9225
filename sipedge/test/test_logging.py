# -*- test-case-name: sipedge.test.test_logging -*-
"""
Tests for L{sipedge._logging}: C{[log] level} and C{format} applied to what
twistd logs, in memory and through the real C{twistd sipedge}.
"""

from __future__ import annotations

import io
import json
import signal
import socket
import sys
import time
from pathlib import Path

from twisted.application.service import Application
from twisted.logger import ILogObserver, Logger, LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipedge._logging import log_observer, twistd_log_output
from sipedge.config import parse_config
from sipedge.service import build_service
from sipedge.testing import FakeReactor, SipEdgeProcess


class ObserverTests(SynchronousTestCase):
    """L{log_observer}."""

    def test_json_fields(self) -> None:
        """
        In JSON, each event is one object on one line with its time, level,
        namespace and rendered text, and every field it was logged with.
        """
        out = io.StringIO()
        log = Logger(namespace="sipedge.stage.filter", observer=log_observer(
            LogLevel.info, "json", out))
        log.warn("Rejected {method} from {source} by rule {rule}", method="INVITE",
                 source="192.0.2.7:5060", rule="ua-block", user="alice", call_id="c1@x",
                 count=3)
        [line] = out.getvalue().splitlines()
        record = json.loads(line)
        self.assertEqual(record["level"], "warn")
        self.assertEqual(record["namespace"], "sipedge.stage.filter")
        self.assertEqual(record["text"], "Rejected INVITE from 192.0.2.7:5060 by rule ua-block")
        self.assertEqual(
            {k: record[k] for k in ("source", "rule", "user", "call_id", "count")},
            {"source": "192.0.2.7:5060", "rule": "ua-block", "user": "alice", "call_id": "c1@x",
             "count": 3},
        )
        self.assertRegex(record["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")

    def test_json_worker_record(self) -> None:
        """
        In JSON, a worker's record relayed by the supervisor is written as
        the worker wrote it, with the worker's index; in text, as a line.
        """
        record = {"time": "2026-12-07T10:00:00.000+00:00", "level": "warn",
                  "namespace": "sipedge.transport", "text": "Malformed", "source": "x:1"}
        out = io.StringIO()
        log = Logger(namespace="sipedge.process", observer=log_observer(LogLevel.info, "json", out))
        log.warn("worker {worker}: {text}", worker=1, text="Malformed", worker_record=record)
        self.assertEqual(json.loads(out.getvalue()), {**record, "worker": 1})
        text = io.StringIO()
        log = Logger(namespace="sipedge.process",
                     observer=log_observer(LogLevel.info, "text", text))
        log.warn("worker {worker}: {text}", worker=1, text="Malformed", worker_record=record)
        self.assertIn("worker 1: Malformed", text.getvalue())

    def test_json_failure_and_objects(self) -> None:
        """A failure carries its traceback; a field that is no JSON value is its text."""
        out = io.StringIO()
        log = Logger(observer=log_observer(LogLevel.info, "json", out))
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            log.failure("Broke on {thing}", Failure(), thing=Path("/x"))
        record = json.loads(out.getvalue())
        self.assertIn("ZeroDivisionError", record["traceback"])
        self.assertEqual((record["thing"], record["level"]), ("/x", "critical"))

    def test_level(self) -> None:
        """Below the level nothing is written, in either format."""
        for fmt in ("json", "text"):
            out = io.StringIO()
            log = Logger(observer=log_observer(LogLevel.warn, fmt, out))
            log.debug("debug line")
            log.info("info line")
            log.warn("warn line")
            log.error("error line")
            text = out.getvalue()
            self.assertNotIn("debug line", text)
            self.assertNotIn("info line", text)
            self.assertIn("warn line", text)
            self.assertIn("error line", text)
            self.assertEqual(len(text.splitlines()), 2, text)


class OutputTests(SynchronousTestCase):
    """L{twistd_log_output}: where twistd would log."""

    def test_choices(self) -> None:
        """
        Standard output with C{-n} (and no file, or C{-}); nothing of ours
        with C{--logger} or C{--syslog}, or without twistd's options.
        """
        self.assertIs(twistd_log_output({"nodaemon": True, "logfile": None}), sys.stdout)
        self.assertIs(twistd_log_output({"nodaemon": True, "logfile": "-"}), sys.stdout)
        self.assertIsNone(twistd_log_output({"nodaemon": True, "logger": "x.y"}))
        self.assertIsNone(twistd_log_output({"syslog": True}))
        self.assertIsNone(twistd_log_output(None))

    def test_file(self) -> None:
        """C{--logfile PATH} is written to."""
        path = Path(self.mktemp()).absolute()
        previous = signal.getsignal(signal.SIGUSR1)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        output = twistd_log_output({"nodaemon": False, "logfile": str(path)})
        assert output is not None
        self.addCleanup(output.close)
        Logger(namespace="t", observer=log_observer(LogLevel.info, "text", output)).info("hello")
        output.flush()
        self.assertIn("hello", path.read_text())


class ApplicationTests(SynchronousTestCase):
    """The service gives twistd's application its observer."""

    def build(self) -> object:
        state = Path(self.mktemp()).absolute()
        service = build_service(parse_config({
            "sip": {"listen": ["udp:127.0.0.1:5070"]}, "state": {"path": str(state)}
        }), FakeReactor())
        self.addCleanup(service.stopService)
        return service

    def test_installed(self) -> None:
        """With a L{log_observer} set, joining the application installs it."""
        service = self.build()
        observer = log_observer(LogLevel.info, "json", io.StringIO())
        service.log_observer = observer  # type: ignore[attr-defined]
        application = Application("sipedge")
        service.setServiceParent(application)  # type: ignore[attr-defined]
        self.assertIs(application.getComponent(ILogObserver), observer)

    def test_not_replaced(self) -> None:
        """An observer already on the application (someone chose it) is kept."""
        service = self.build()
        service.log_observer = log_observer(  # type: ignore[attr-defined]
            LogLevel.info, "json", io.StringIO())
        application = Application("sipedge")
        theirs = log_observer(LogLevel.debug, "text", io.StringIO())
        application.setComponent(ILogObserver, theirs)
        service.setServiceParent(application)  # type: ignore[attr-defined]
        self.assertIs(application.getComponent(ILogObserver), theirs)


class TwistdJsonTests(SynchronousTestCase):
    """The real C{twistd -n sipedge} with C{[log] format = "json"}."""

    def test_json_lines(self) -> None:
        """
        Every line twistd writes (its own start-up lines included) is a JSON
        object, and the warning for a malformed datagram carries its source
        and reason as fields.
        """
        work = Path(self.mktemp())
        work.mkdir(parents=True)
        proxy = SipEdgeProcess(work, """
[sip]
listen = ["udp:127.0.0.1:0"]
domains = ["example.test"]
[log]
format = "json"
level = "info"
""")
        self.addCleanup(proxy.stop)
        proxy.start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.sendto(b"NOT SIP AT ALL\r\n\r\n", ("127.0.0.1", proxy.ports["UDP"]))
            source = f"127.0.0.1:{s.getsockname()[1]}"
        # Bounded wait for the warning: on a busy machine it may come later.
        deadline = time.monotonic() + 20
        while "Malformed" not in proxy.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        proxy.stop()
        records = [json.loads(line) for line in proxy.log().splitlines() if line.strip()]
        self.assertTrue(any(r["namespace"].startswith("twisted.") for r in records))
        [malformed] = [r for r in records if r["text"].startswith("Malformed")]
        self.assertEqual(malformed["level"], "warn")
        self.assertIn(source, malformed["source"])
        self.assertIn("reason", malformed)
