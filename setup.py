"""
sipedge: a SIP edge proxy framework on Twisted.

Metadata lives in setup.cfg. The twistd plugin dropin in twisted/plugins/ is
packaged as Twisted's docs/core/howto/tap.rst says: no __init__.py there,
and "twisted.plugins" listed with the project's own packages.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(exclude=["twisted", "twisted.*"]), "twisted.plugins"])
