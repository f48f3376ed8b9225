"""
The plugin package for sipedge's own plugin interfaces (Twisted's
"alternate plugin packages"). Third-party stages ship a module in a
C{sipedge/plugins/} directory of their own distribution, with no
C{__init__.py}; it is found on C{sys.path} like Twisted's dropins.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
