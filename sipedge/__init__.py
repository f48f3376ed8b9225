"""
sipedge: a SIP edge proxy framework on Twisted.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
