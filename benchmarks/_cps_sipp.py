"""
SIPp for cps.py: the UAS (in the background for a whole ladder), the
REGISTER of the UAS, and one UAC step at a fixed rate, with its counts
read from SIPp's C{-trace_stat} file and its setup times from C{-trace_rtt}.

The UAC and REGISTER scenarios are the end-to-end tier's
(sipedge/testing/sipp): uac.xml calls C{sip:[service]@[domain]} through
the proxy (the remote host argument) and follows Record-Route for ACK and
BYE; uac_auth.xml does the same as one of our users, answering the proxy's
407 with MD5 digest credentials (C{-au}, C{-ap}, C{-auth_uri}). The UAS is
L{UAS_XML}, written into the work directory: uas.xml plus one step, so that
it answers a retransmitted INVITE with its 200 again as a real UAS does
(RFC 3261 13.3.1.4), where SIPp 3.6 would abort the call ("unexpected
message") once it has sent both 180 and 200. Without it, one pause in the
proxy longer than T1 turns into failed calls at the UAS rather than late
ones.
"""

from __future__ import annotations

import resource
import signal
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _cps_procs import cpu_seconds

from sipedge.testing import SIPP_SCENARIOS, free_port, media_port

UAS_XML = """\
<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- sipedge benchmarks/cps.py: sipedge/testing/sipp/uas.xml, plus: a
     retransmitted INVITE after the 200 gets the 200 again. -->
<scenario name="sipedge benchmark UAS">
  <recv request="INVITE" crlf="true" rrs="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <label id="answer"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_Record-Route:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="INVITE" optional="true" next="answer"/>
  <recv request="ACK" rtd="true" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <timewait milliseconds="500"/>
</scenario>
"""


def _base(
    sipp: str, scenario: Path, host: str, port: int, errors: Path, transport: str = "u1"
) -> list[str]:
    return [
        sipp,
        "-sf",
        str(scenario),
        "-i",
        host,
        "-p",
        str(port),
        "-t",
        transport,
        "-mp",
        str(media_port(host)),
        "-nostdin",
        "-trace_err",
        "-error_file",
        str(errors),
        "-max_log_size",
        "2000000",
    ]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Uas:
    """L{UAS_XML} in the background until L{stop}."""

    def __init__(self, sipp: str, workdir: Path, host: str) -> None:
        self.host = host
        self.port = free_port(host)
        scenario = workdir / "uas-bench.xml"
        scenario.write_text(UAS_XML)
        self.out_path = workdir / f"uas-{self.port}.out"
        self._out = self.out_path.open("wb")
        errors = workdir / f"uas-{self.port}-errors.log"
        self.process = subprocess.Popen(
            [*_base(sipp, scenario, host, self.port, errors), "-l", "15000", "-timeout", "3600s"],
            cwd=workdir,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            if self.process.poll() is not None:
                out = self.out_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"SIPp UAS exited: {out}")
        except BaseException:
            self.stop()
            raise

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid) or 0.0

    def stop(self) -> None:
        _stop(self.process)
        self._out.close()


def register(
    sipp: str, workdir: Path, host: str, proxy: str, domain: str, contact: int,
    auth: tuple[str, str] | None = None, user: str = "service",
) -> None:  # fmt: skip
    """
    Register C{sip:user@domain} -> C{sip:user@host:contact} (sent from
    C{host}), answering a digest challenge with C{auth} (user, password).
    """
    port = free_port(host)
    credentials = ["-au", auth[0], "-ap", auth[1], "-auth_uri", domain] if auth else []
    errors = workdir / f"register-{port}-errors.log"
    result = subprocess.run(
        [
            *_base(sipp, SIPP_SCENARIOS / "register.xml", host, port, errors),
            proxy,
            "-s",
            user,
            "-key",
            "domain",
            domain,
            "-key",
            "contact_port",
            str(contact),
            "-key",
            "expires",
            "3600",
            "-m",
            "1",
            "-timeout",
            "15s",
            "-timeout_error",
            *credentials,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=45,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"REGISTER through {proxy} failed (SIPp exit {result.returncode}):\n"
            f"{result.stdout[-2000:]}"
        )


@dataclass
class Step:
    rate: int
    calls: int  # asked for (-m)
    created: int = 0
    ok: int = 0
    failed: int = 0  # calls - ok: failed, timed out or never finished
    retrans: int = 0
    wall: float = 0.0  # seconds from SIPp start to exit
    creation_rate: float = 0.0  # SIPp's cumulative call rate
    setup_p50: float | None = None  # INVITE -> 200, ms (SIPp's rtd, -trace_rtt)
    setup_p99: float | None = None
    setup_max: float | None = None
    exit: int = 0
    uac_cpu: float = 0.0  # % of one core
    span: float = 0.0  # seconds from the first INVITE's 200 to the last

    @property
    def fail_pct(self) -> float:
        return 100.0 * self.failed / max(self.calls, 1)

    @property
    def achieved(self) -> float:
        """
        Successful calls a second: over the span from the first to the last
        200 for an INVITE (so that the receive timeout of a few failed calls
        at the end does not count), else over SIPp's whole run.
        """
        period = self.span + 1.0 / self.rate if self.span else self.wall
        return self.ok / period if period else 0.0


def _setup_times(path: Path) -> list[tuple[float, float]]:
    """
    (when, response time) in ms from a SIPp C{-trace_rtt} file
    (C{date_ms;response_time_ms;rtd_no}, the date counted from SIPp's start).
    """
    times: list[tuple[float, float]] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return times
    for line in lines:
        fields = line.split(";")
        if len(fields) >= 2:
            try:
                times.append((float(fields[0]), float(fields[1])))
            except ValueError:
                continue  # the header
    return times


def run_uac(
    sipp: str,
    workdir: Path,
    host: str,
    proxy: str,
    domain: str,
    rate: int,
    seconds: float,
    recv_timeout_ms: int = 5000,
    scenario: str = "uac.xml",
    extra: Sequence[str] = (),
    transport: str = "u1",
) -> Step:
    """
    One step: C{rate} calls a second for C{seconds} (C{-m rate*seconds},
    C{-d 0}), open loop (C{-l} far above what the step needs, so an
    overloaded proxy shows up as failures, not as SIPp slowing down).
    A call that waits more than C{recv_timeout_ms} for a message fails.
    C{scenario} is one of the end-to-end tier's (C{uac_auth.xml}: the
    caller answers 407 challenges), C{extra} more SIPp arguments (its keys
    and credentials); C{transport} SIPp's C{-t} (C{un}: a socket, so a
    source port, per call).
    """
    calls = max(1, int(rate * seconds))
    port = free_port(host)
    stepdir = workdir / f"uac-{rate}-{port}"
    stepdir.mkdir()
    stat = stepdir / "stat.csv"
    limit = min(15000, max(1000, rate * (recv_timeout_ms // 1000 + 5)))
    budget = int(seconds + recv_timeout_ms / 1000 + 20)
    cmd = [
        *_base(sipp, SIPP_SCENARIOS / scenario, host, port, stepdir / "errors.log", transport),
        *(["-max_socket", "10000"] if transport == "un" else []),  # under the fd limit
        proxy,
        "-s",
        "service",
        "-key",
        "domain",
        domain,
        "-r",
        str(rate),
        "-m",
        str(calls),
        "-d",
        "0",
        "-l",
        str(limit),
        "-recv_timeout",
        str(recv_timeout_ms),
        "-timeout",
        f"{budget}s",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        str(stat),
        "-fd",
        "1",
        "-trace_rtt",
        "-rtt_freq",
        "1",
        *extra,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    process = subprocess.Popen(
        cmd,
        cwd=stepdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        code = process.wait(budget + 30)
    except subprocess.TimeoutExpired:
        _stop(process)
        code = -1
    except BaseException:
        _stop(process)
        raise
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    step = Step(rate=rate, calls=calls, wall=wall, exit=code, uac_cpu=100.0 * cpu / wall)
    try:
        lines = [line for line in stat.read_text().splitlines() if line.strip()]
    except OSError:
        lines = []
    if len(lines) >= 2:
        names = lines[0].rstrip(";").split(";")
        values = dict(zip(names, lines[-1].rstrip(";").split(";"), strict=False))
        step.created = int(values.get("TotalCallCreated", 0))
        step.ok = int(values.get("SuccessfulCall(C)", 0))
        step.retrans = int(values.get("Retransmissions(C)", 0))
        step.creation_rate = float(values.get("CallRate(C)", 0) or 0)
    records = [r for f in stepdir.glob("*_rtt.csv") for r in _setup_times(f)]
    times = sorted(rtt for _, rtt in records)
    if times:
        dates = [when for when, _ in records]
        step.span = (max(dates) - min(dates)) / 1000.0
        step.setup_p50 = statistics.median(times)
        step.setup_p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        step.setup_max = times[-1]
    step.failed = calls - step.ok
    return step
