"""
sipedge: a SIP edge proxy framework on Twisted.

Metadata lives in setup.cfg. The twistd plugin dropin in twisted/plugins/ is
packaged as Twisted's docs/core/howto/tap.rst says: no __init__.py there,
and "twisted.plugins" listed with the project's own packages.

With SIPEDGE_MYPYC=1, a wheel build (``pip install .``) compiles the modules
of the message core in MYPYC_MODULES with mypyc (doc/performance.md). It is
optional all the way: without a C compiler, the Python headers or mypyc,
the install goes on as pure Python and says why. Editable installs stay pure
(a compiled module next to its source would hide edits to it).
"""

import os
import sys

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

# The message core's modules: those on the request path and the SDP ones
# (the media relay parses and rewrites every offer and answer). Left out:
# _limits (read once at start-up) and _build (which says what is compiled).
MYPYC_MODULES = [
    f"sipedge/message/{name}.py"
    for name in (
        "_address",
        "_auth",
        "_branch",
        "_check",
        "_fields",
        "_headers",
        "_lex",
        "_message",
        "_nat",
        "_parser",
        "_sdp",
        "_sdp_crypto",
        "_sdp_grammar",
        "_sdp_lines",
        "_sdp_section",
        "_serializer",
        "_sip_uri",
        "_uri",
        "_uri_grammar",
        "_via",
    )
]


def _say(text):
    print(f"sipedge: {text}", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """Build every compiled module or none: on any failure, pure Python."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler, no Python.h, a compile error
            _say(f"compiling the message core failed ({e}); installing pure Python")
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.remove(path)
            self.extensions = []

    def get_outputs(self):
        return [self.get_ext_fullpath(e.name) for e in self.extensions]


def _mypyc_extensions():
    if os.environ.get("SIPEDGE_MYPYC", "").strip() in ("", "0"):
        return []
    if "editable_wheel" in sys.argv:
        _say("SIPEDGE_MYPYC is ignored for an editable install; installing pure Python")
        return []
    if not {"bdist_wheel", "build_ext", "build", "install"} & set(sys.argv):
        return []  # metadata only (egg_info, sdist): nothing to compile
    try:
        from mypyc.build import mypycify

        return mypycify(
            ["--config-file", "build_support/mypyc.ini", *MYPYC_MODULES], opt_level="3"
        )
    except BaseException as e:  # mypyc missing, or its type check failed
        _say(f"mypyc could not prepare the message core ({e!r}); installing pure Python")
        return []


setup(
    packages=[*find_packages(exclude=["twisted", "twisted.*", "build_support"]), "twisted.plugins"],
    ext_modules=_mypyc_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
