"""
Stores of state that must survive a restart: the location service
(RFC 3261 10) now; bans and credentials later. SQLite by default.
"""

from sipedge.store._binding import Binding, aor_of, binding_order, same_binding
from sipedge.store._memory import MemoryLocationStore
from sipedge.store._sqlite import DATABASE_NAME, SCHEMA_VERSION, SQLiteLocationStore

__all__ = [
    "DATABASE_NAME",
    "SCHEMA_VERSION",
    "Binding",
    "MemoryLocationStore",
    "SQLiteLocationStore",
    "aor_of",
    "binding_order",
    "same_binding",
]
