"""
Stores of state that must survive a restart: the location service
(RFC 3261 10) now; bans and credentials later. SQLite by default.
"""

from sipedge.store._binding import Binding, aor_of, binding_order, same_binding
from sipedge.store._lost import LostBindings
from sipedge.store._memory import MemoryLocationStore
from sipedge.store._reach import binding_flow
from sipedge.store._sqlite import DATABASE_NAME, SCHEMA_VERSION, SQLiteLocationStore
from sipedge.store._sqlite_base import (
    closing_on_failure,
    open_database,
    read_schema_version,
    transaction,
)
from sipedge.store._wal import WalChanges

__all__ = [
    "DATABASE_NAME",
    "SCHEMA_VERSION",
    "Binding",
    "LostBindings",
    "MemoryLocationStore",
    "SQLiteLocationStore",
    "WalChanges",
    "aor_of",
    "binding_flow",
    "binding_order",
    "closing_on_failure",
    "open_database",
    "read_schema_version",
    "same_binding",
    "transaction",
]
