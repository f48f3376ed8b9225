"""
The rows of benchmarks/cps.py: one step of a ladder, how it is printed and
summed up (held, saturated, CPU per call with idle subtracted).
"""

from __future__ import annotations

from _cps_sipp import Step

MAX_FAIL_PCT = 1.0
MIN_ACHIEVED = 0.90
SATURATED_PCT = 95.0


class Row:
    def __init__(
        self,
        step: Step,
        cpu: dict[str, float],
        hwm_kb: int,
        uas_cpu: float,
        gc: dict[str, float] | None,
        drops: int | None,
        idle: float = 0.0,
    ) -> None:
        self.step = step
        self.idle = idle
        self.cpu = cpu
        self.hwm_kb = hwm_kb
        self.uas_cpu = uas_cpu
        self.gc = gc
        self.drops = drops

    @property
    def held(self) -> bool:
        s = self.step
        return s.fail_pct < MAX_FAIL_PCT and s.achieved >= MIN_ACHIEVED * s.rate

    @property
    def saturated(self) -> bool:
        return self.cpu["busiest"] >= SATURATED_PCT


HEADER = (
    f"{'rate':>5} {'calls':>6} {'ok':>6} {'fail%':>6} {'retr':>5} {'done/s':>6}"
    f" {'p50':>6} {'p99':>6} {'proxy':>5} {'worker':>6} {'RSS':>6} {'gcmax':>6} {'drops':>5}"
    f" {'us/call':>7} {'uac':>4} {'uas':>4} {'box':>4}  verdict"
)
UNITS = (
    f"{'cps':>5} {'':>6} {'':>6} {'':>6} {'':>5} {'cps':>6}"
    f" {'ms':>6} {'ms':>6} {'%core':>5} {'%core':>6} {'MB':>6} {'ms':>6} {'':>5}"
    f" {'us':>7} {'%':>4} {'%':>4} {'%':>4}"
)
LEGEND = """\
columns: retr = retransmissions SIPp saw or sent; done/s = successful calls a second (first
  to last 200 for an INVITE);
  p50, p99 = INVITE->200 at the UAC; proxy = CPU of all the proxy's processes, worker = the
  busiest one (sipedge has one), in % of one core; RSS = peak (VmHWM) of the biggest process;
  gcmax = longest garbage collection in sipedge during the step (--gc-stats); drops =
  datagrams the kernel dropped at the proxy's full UDP receive buffer (/proc/net/udp);
  us/call = the proxy's CPU time per successful call, its idle CPU (measured before the
  first step) subtracted; uac, uas = SIPp's CPU; box = the whole machine busy (all cores;
  other jobs included)"""


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return "<1" if value < 1 else f"{value:.0f}"


def format_row(row: Row) -> str:
    s = row.step
    verdict = "held" if row.held else "NOT held"
    if row.saturated:
        verdict += ", CPU saturated"
    if s.exit not in (0, 1):
        verdict += f" (SIPp exit {s.exit})"
    gcmax = f"{row.gc['max']:.0f}" if row.gc else "-"
    drops = "-" if row.drops is None else str(row.drops)
    return (
        f"{s.rate:>5} {s.calls:>6} {s.ok:>6} {s.fail_pct:>6.2f} {s.retrans:>5} {s.achieved:>6.0f}"
        f" {_ms(s.setup_p50):>6} {_ms(s.setup_p99):>6} {row.cpu['total']:>5.0f}"
        f" {row.cpu['busiest']:>6.0f} {row.hwm_kb / 1024:>6.0f} {gcmax:>6} {drops:>5}"
        f" {cpu_per_call(row):>7} {s.uac_cpu:>4.0f} {row.uas_cpu:>4.0f}"
        f" {row.cpu['machine']:>4.0f}  {verdict}"
    )


def best(rows: list[Row]) -> Row | None:
    held = [r for r in rows if r.held]
    return max(held, key=lambda r: r.step.rate) if held else None


def summary(name: str, rows: list[Row]) -> tuple[int, bool]:
    """Print the summary line; return (highest held rate, whether more might be held)."""
    top = best(rows)
    if top is None:
        print(f"{name}: held no rate (first step {rows[0].step.rate if rows else '-'} cps failed)")
        return 0, False
    open_ended = rows[-1].held and not rows[-1].saturated
    more = " or more (the ladder ended first)" if open_ended else ""
    s = top.step
    print(
        f"{name}: highest held {s.rate} cps{more}; at that rate {top.cpu['total']:.0f}% of one"
        f" core (SIP worker {top.cpu['busiest']:.0f}%), peak RSS {top.hwm_kb / 1024:.0f} MB,"
        f" INVITE->200 p50 {_ms(s.setup_p50)} ms p99 {_ms(s.setup_p99)} ms,"
        f" {s.fail_pct:.2f}% failed"
    )
    return s.rate, open_ended


def cpu_per_call(row: Row | None) -> str:
    """
    The proxy's CPU time per successful call at a step, microseconds, with
    its idle CPU (measured before the ladder's first step) subtracted.
    """
    if row is None or not row.step.achieved:
        return "-"
    busy = max(row.cpu["total"] - row.idle, 0.0)
    return f"{busy / 100 / row.step.achieved * 1e6:.0f}"


def compare_auth(
    plain: list[Row], auth: list[Row], plain_top: tuple[int, bool], auth_top: tuple[int, bool]
) -> None:
    """The two top rates of an auth run (from L{summary}), side by side."""
    (p, p_open), (a, a_open) = plain_top, auth_top
    more = " or more"
    print(
        f"\ncalls a second with digest authentication on every INVITE: {a}{more * a_open}"
        f" (plain: {p}{more * p_open} from the same run)"
    )
    ratio = f"; auth / plain = {a / p:.2f}" if p and not (a_open or p_open) else ""
    print(
        f"sipedge CPU per successful call at those rates: {cpu_per_call(best(auth))} us with"
        f" digest, {cpu_per_call(best(plain))} us plain{ratio}"
    )
    if a_open or p_open:
        print('("or more": that ladder ended before the proxy failed; give higher --rates)')
