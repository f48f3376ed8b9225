# -*- test-case-name: sipedge.test.test_message_build -*-
"""
Which build of the message core is running: pure Python, or modules
compiled by mypyc (``SIPEDGE_MYPYC=1 pip install .``, doc/performance.md).
Both builds behave the same; the compiled one spends less CPU per message.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from types import ModuleType

from sipedge.message import _address, _headers, _lex, _message, _parser, _uri, _via


def is_extension(module: ModuleType) -> bool:
    """True if C{module} was loaded from a compiled extension."""
    path = getattr(module, "__file__", None) or ""
    return any(path.endswith(suffix) for suffix in EXTENSION_SUFFIXES)


def compiled_modules(
    modules: tuple[ModuleType, ...] = (_address, _headers, _lex, _message, _parser, _uri, _via),
) -> tuple[str, ...]:
    """The names of the message core's hot modules that run compiled."""
    return tuple(m.__name__ for m in modules if is_extension(m))


#: True when the message core's parser runs compiled (mypyc).
COMPILED: bool = is_extension(_parser)
