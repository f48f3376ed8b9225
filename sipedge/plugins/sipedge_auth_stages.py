"""
The digest-auth stage, registered as a plugin (see
C{sipedge.pipeline.stages._digest_auth}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sipedge.plugins.sipedge_stages import StageFactory

if TYPE_CHECKING:
    from sipedge.auth import AuthConfig
    from sipedge.pipeline import StageServices


class AuthStageFactory(StageFactory):
    """
    L{StageFactory}, under this module's name: the built-in stages of
    C{sipedge_stages} are told apart from plugins by their factory's module.
    """


def _digest_auth(options: dict[str, Any], section: AuthConfig, services: StageServices) -> Any:
    from sipedge.pipeline.stages import build_digest_auth_stage

    return build_digest_auth_stage(options, services, section)


digest_auth = AuthStageFactory(
    "digest-auth",
    "Challenge our users (401 for REGISTER, 407 otherwise) and check their digest"
    " credentials; 403 for someone else's identity.",
    _digest_auth,
    ("realm", "nonce_lifetime", "algorithms", "require_for_our_domains"),
    section=lambda config: config.auth,
)
