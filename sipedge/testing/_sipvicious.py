# -*- test-case-name: sipedge.test.test_e2e -*-
"""
SIPVicious (Debian: C{sipvicious}) as the attacker of the security tests:
its tools run bounded in time, bound to a loopback address, their tables
read back.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sipedge.testing._tools import require_tool

__all__ = ["run_sipvicious", "sipvicious_table", "sipvicious_tool"]

# Runs a SIPVicious tool's main() with its own arguments, with two repairs
# an attacker would make too, and one for the tests' time budget:
# - svwar and svcrack 0.3.3 ignore -b (they never pass it on), so their
#   socket is bound to the address given here (the attacker's loopback
#   address) instead of all interfaces;
# - svcrack 0.3.3 crashes (KeyError 'noncecount') on a challenge whose qop
#   is a list such as "auth,auth-int": the nonce count starts at 1 (each of
#   its answers uses a fresh nonce);
# - their socket timeout (how long they wait for stragglers at the end,
#   10 s for svcrack) is cut to 2 s.
_SIPVICIOUS_LAUNCHER = r"""
import importlib, os, sys
tool_path, bind, *argv = sys.argv[1:]
real = os.path.realpath(tool_path)
sys.path.insert(0, os.path.dirname(real))
name = os.path.basename(real)
name = name[len("sipvicious_"):] if name.startswith("sipvicious_") else name
module = importlib.import_module("sipvicious." + name)
from sipvicious.libs import svhelper
for cls_name in ("TakeASip", "ASipOfRedWine"):
    cls = getattr(module, cls_name, None)
    if cls is None:
        continue
    def __init__(self, *args, _init=cls.__init__, **kwargs):
        kwargs["bindingip"] = bind
        _init(self, *args, **kwargs)
        self.sock.settimeout(2)
    cls.__init__ = __init__
_challenge_response = svhelper.challengeResponse
def challenge_response(auth, method, uri):
    auth.setdefault("noncecount", 1)
    return _challenge_response(auth, method, uri)
svhelper.challengeResponse = challenge_response
sys.argv = [name, *argv]
sys.exit(module.main())
"""


def sipvicious_tool(name: str) -> str:
    """
    The path of SIPVicious' C{name} (C{svmap}, C{svwar}, C{svcrack}):
    C{sipvicious_<name>} (newer packages) or C{<name>} (Debian's 0.3.3);
    skip (or fail, in CI) without it.
    """
    for candidate in (f"sipvicious_{name}", name):
        path = shutil.which(candidate)
        if path is not None:
            return path
    return require_tool(name)


def run_sipvicious(
    name: str, bind: str, *args: Any, timeout: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run SIPVicious' C{name} with C{args}, its socket bound to C{bind}
    (see L{_SIPVICIOUS_LAUNCHER}), under the interpreter of its own script,
    for at most C{timeout} seconds. Its report is on stdout, its log
    (C{-v}) on stderr.
    """
    path = sipvicious_tool(name)
    with open(os.path.realpath(path), "rb") as script:
        first = script.readline().decode(errors="replace")
    interpreter = first[2:].strip().split()[0] if first.startswith("#!") else "python3"
    if os.path.basename(interpreter) == "env":
        interpreter = first[2:].strip().split()[1]
    return subprocess.run(
        [interpreter, "-c", _SIPVICIOUS_LAUNCHER, path, bind, *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(cwd) if cwd is not None else os.environ.get("HOME", "/")},
    )


def sipvicious_table(output: str) -> list[tuple[str, str]]:
    """The rows of the table a SIPVicious tool prints (its header left out)."""
    rows = re.findall(r"^\|\s*(.*?)\s*\|\s*(.*?)\s*\|\s*$", output, re.MULTILINE)
    return [row for row in rows if row not in (
        ("SIP Device", "User Agent"), ("Extension", "Authentication"), ("Extension", "Password"),
    )]
