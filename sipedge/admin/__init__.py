"""
The admin API (C{[admin] listen}): JSON over HTTP with a bearer token, for
C{sipedge ctl} and an operator's scripts. See C{doc/admin-api.md}.
"""

from sipedge.admin._api import API_PREFIX, AdminResource, admin_site
from sipedge.admin._config import TOKEN_FILE, AdminConfig
from sipedge.admin._fanout import WorkersAdminResource, sum_counters
from sipedge.admin._tls import admin_tls_context, listen_admin
from sipedge.admin._token import read_or_make_token

__all__ = [
    "API_PREFIX",
    "TOKEN_FILE",
    "AdminConfig",
    "AdminResource",
    "WorkersAdminResource",
    "admin_site",
    "admin_tls_context",
    "listen_admin",
    "read_or_make_token",
    "sum_counters",
]
