"""
The plugin dropin: makes the blocklist stage known to sipedge, which looks
for L{IStageFactory} providers in the C{sipedge.plugins} package. This
directory and its parent have no C{__init__.py}, on purpose.
"""

from sipedge_blocklist import BlocklistFactory

blocklist = BlocklistFactory()
