"""
sipedge's PEP 517 build backend: setuptools' own, plus mypyc on request.

A plain ``pip install .`` builds pure Python with nothing but setuptools.
With ``SIPEDGE_MYPYC=1`` in the environment, a wheel build (``pip install
.``, not ``-e``) also asks for mypy, whose mypyc compiles the message core
to C extensions (setup.py says which modules); setup.py falls back to pure
Python with a warning if the compile fails. doc/performance.md has the
figures.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 (the whole PEP 517 interface)

# mypyc ships in mypy (the build was tested with 2.4); attrs for its plugin
# to see the attrs classes the compiled modules build and read.
MYPYC_REQUIRES = ["mypy >= 2.4, < 3", "attrs >= 23.2"]


def mypyc_requested() -> bool:
    """True when the environment asks for the compiled build."""
    return os.environ.get("SIPEDGE_MYPYC", "").strip() not in ("", "0")


def get_requires_for_build_wheel(config_settings=None):  # type: ignore[no-untyped-def]
    requires = _setuptools.get_requires_for_build_wheel(config_settings)
    if mypyc_requested():
        requires = [*requires, *MYPYC_REQUIRES]
    return requires
