"""
Call records (C{[accounting] path}): L{CallRecorder} follows each call
through the signalling and L{JsonLinesWriter} appends one JSON object per
call to a file, off the reactor thread. See C{doc/operations.md}.
"""

from sipedge.accounting._config import AccountingConfig
from sipedge.accounting._record import CallRecord, CallRecorder
from sipedge.accounting._writer import JsonLinesWriter

__all__ = ["AccountingConfig", "CallRecord", "CallRecorder", "JsonLinesWriter"]
