# -*- test-case-name: sipedge.test.test_admin -*-
"""
C{sipedge ctl}: the admin API from the shell, as C{kamcmd} or
C{rtpengine-ctl} are for theirs. Tables for people, C{--json} for scripts.
"""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TextIO

__all__ = ["configure_ctl_parser", "run_ctl"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def configure_ctl_parser(parser: argparse.ArgumentParser) -> None:
    """Add C{sipedge ctl}'s options and commands to C{parser}."""
    parser.description = (
        "Talk to a running sipedge through its admin API ([admin] listen). The address"
        " and token come from --config (or --url and --token-file)."
    )
    parser.add_argument("--config", metavar="FILE", help="sipedge's configuration file")
    parser.add_argument("--url", help="the API's base, e.g. http://127.0.0.1:8080")
    parser.add_argument("--token-file", metavar="FILE", help="the bearer token's file")
    parser.add_argument(
        "--cafile", metavar="FILE",
        help="for an https URL: the CA certificates to verify the API's certificate with"
        " (default: with --config, the certificate the API presents, pinned; else the"
        " system's CAs)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    commands = parser.add_subparsers(dest="ctl", metavar="COMMAND", required=True)
    registrations = commands.add_parser("registrations", help="list registrations")
    registrations.add_argument("--aor", default="", help="only AORs containing this")
    commands.add_parser("unregister", help="remove an AOR's registration").add_argument("aor")
    calls = commands.add_parser("calls", help="list live calls")
    calls.add_argument("--call-id", default="", help="only Call-IDs containing this")
    commands.add_parser(
        "hangup", help="end a call: BYE to both parties, media released"
    ).add_argument("call_id")
    commands.add_parser("bans", help="list bans")
    ban = commands.add_parser("ban", help="ban an address")
    ban.add_argument("address")
    ban.add_argument("--duration", type=float, help="seconds (default: for ever)")
    ban.add_argument("--reason", default="banned by the operator")
    commands.add_parser("unban", help="lift a ban").add_argument("address")
    commands.add_parser("counters", help="the counters")
    commands.add_parser("reload", help="reload what can change without a restart")


def _pinned(path: Path) -> ssl.SSLContext:
    """
    Trust exactly the certificate in C{path} (the one the API presents):
    a self-signed certificate, or one whose name is not the address we
    connect to (the token is safe if the certificate is the right one).
    """
    context = ssl.create_default_context(cafile=str(path))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    return context


def _served_certificate(config: Any) -> Path:
    """The certificate file the admin API of C{config} presents."""
    from sipedge.transport import CERTIFICATE_FILE

    admin, tls = config.admin, config.tls
    return Path(admin.certificate or tls.certificate
                or Path(config.state.path) / CERTIFICATE_FILE)


def _endpoint(args: argparse.Namespace) -> tuple[str, str, ssl.SSLContext | None]:
    """
    The API's base URL, the token and the TLS context for an https URL,
    from the options or the configuration.
    """
    url, token_file = args.url, args.token_file
    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    if args.config is not None and (url is None or token_file is None or context is None):
        from sipedge.admin import TOKEN_FILE
        from sipedge.config import load_config

        config = load_config(args.config)
        listen = config.admin.listen
        if url is None:
            if listen is None or listen.port == 0:
                raise SystemExit("sipedge ctl: no [admin] listen address in the"
                                 " configuration: give --url")
            host = f"[{listen.host}]" if ":" in listen.host else listen.host
            scheme = "https" if config.admin.secure else "http"
            url = f"{scheme}://{host}:{listen.port}"
        if token_file is None:
            token_file = str(config.admin.token_file or Path(config.state.path) / TOKEN_FILE)
        if context is None and config.admin.secure:
            try:
                context = _pinned(_served_certificate(config))
            except (OSError, ssl.SSLError) as e:
                raise SystemExit(f"sipedge ctl: cannot read the API's certificate: {e}") from None
    if url is None or token_file is None:
        raise SystemExit("sipedge ctl: give --config, or --url and --token-file")
    try:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise SystemExit(
            f"sipedge ctl: cannot read the token file {token_file}: {e.strerror}"
        ) from None
    return url.rstrip("/"), token, context


def _call(url: str, token: str, context: ssl.SSLContext | None, method: str, path: str,
          body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/api/v1/{path}", data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    opener = _OPENER
    if context is not None:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {"error": e.reason}


def _table(out: TextIO, rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)", file=out)
        return
    cells = [[("-" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    header = "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))
    print(header.rstrip(), file=out)
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip(), file=out)


def _media_cell(sessions: list[dict[str, Any]] | None) -> str | None:
    """A call's relay sessions in a cell: C{answered ports 20000,20002 packets 150/149}."""
    if not sessions:
        return None
    return "; ".join(
        f"{s['state']} ports {','.join(map(str, s['ports']))}"
        f" packets {s['a_to_b']['packets']}/{s['b_to_a']['packets']}"
        for s in sessions
    )


def run_ctl(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run one C{sipedge ctl} command; the exit status (1 on an API error)."""
    url, token, context = _endpoint(args)
    quote = urllib.parse.quote
    command = args.ctl
    request: tuple[str, str, Any] = {
        "registrations": ("GET", "registrations?" + urllib.parse.urlencode({"aor": args.aor})
                          if command == "registrations" else "", None),
        "unregister": ("DELETE", f"registrations/{quote(getattr(args, 'aor', ''), safe='')}",
                       None),
        "calls": ("GET", "calls?" + urllib.parse.urlencode(
            {"call_id": getattr(args, "call_id", "")}), None),
        "hangup": ("DELETE", f"calls/{quote(getattr(args, 'call_id', ''), safe='')}", None),
        "bans": ("GET", "bans", None),
        "ban": ("POST", "bans", {"address": getattr(args, "address", None),
                                 "duration": getattr(args, "duration", None),
                                 "reason": getattr(args, "reason", None)}),
        "unban": ("DELETE", f"bans/{quote(getattr(args, 'address', ''), safe='')}", None),
        "counters": ("GET", "counters", None),
        "reload": ("POST", "reload", {}),
    }[command]
    try:
        status, answer = _call(url, token, context, *request)
    except (urllib.error.URLError, OSError) as e:
        print(f"sipedge ctl: cannot reach {url}: {getattr(e, 'reason', e)}", file=err)
        return 1
    if status >= 400:
        print(f"sipedge ctl: {status}: {answer.get('error', answer)}", file=err)
        return 1
    missing = answer.get("workers", {}).get("missing") if isinstance(answer, dict) else None
    if missing:
        print(f"sipedge ctl: {missing} worker(s) did not answer: what follows lacks theirs",
              file=err)
    if args.json:
        print(json.dumps(answer, indent=2), file=out)
        return 0
    if command == "registrations":
        _table(out, answer["registrations"], ["aor", "contact", "expires_in", "flow"])
    elif command == "calls":
        rows = [{**call, "media": _media_cell(call.get("media"))} for call in answer["calls"]]
        worker = ["worker"] if any("worker" in row for row in rows) else []
        _table(out, rows, ["call_id", "caller_tag", "callee_tag", *worker, "media"])
    elif command == "bans":
        _table(out, answer["bans"], ["address", "expires_in", "count", "reason"])
    elif command == "reload":
        for line in answer.get("reloaded", []) or ["nothing changed"]:
            print(f"reloaded: {line}", file=out)
        for line in answer.get("needs_restart", []):
            print(f"not applied: {line}", file=out)
    elif command == "counters":
        for group, counters in answer.items():
            for name, value in counters.items():
                print(f"{group}.{name} {value}", file=out)
    else:
        print(json.dumps(answer), file=out)
    return 0
