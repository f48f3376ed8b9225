"""
The C{media-anchor} stage, registered as a plugin like any third-party
stage.

Its typed section is C{[media]} (a L{sipedge.media.MediaConfig}, which its
factory hands it); its stage options, if any, are C{[media]} keys that
override those for the stage. Its relay is C{services.media}
(the in-process L{sipedge.media.MediaRelay} the composition root builds
from the same section, and closes at shutdown). For services without one
it builds its own on C{services.clock} if that is a reactor, and says what
that costs; with C{anchor = false} it needs none and passes everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.interfaces import IReactorUDP
from twisted.logger import Logger

from sipedge.error import ConfigError
from sipedge.plugins.sipedge_stages import StageFactory

if TYPE_CHECKING:
    from sipedge.media import MediaConfig
    from sipedge.pipeline import StageServices

_log = Logger()


class MediaStageFactory(StageFactory):
    """
    L{StageFactory}, under this module's name (stage factories are told
    apart by their module).
    """

    def build_stage(self, options: dict[str, Any], services: StageServices) -> Any:
        if not self._options:
            # The [media] keys, known once the media package is imported
            # (not when plugins are listed).
            self._options = _option_names()
        return super().build_stage(options, services)

    def __repr__(self) -> str:
        return f"<MediaStageFactory {self.name}>"


def media_config_of(config: MediaConfig, options: dict[str, Any] | None = None) -> MediaConfig:
    """
    The stage's section C{config}, with the stage's C{options} applied.

    @raise ConfigError: for a bad option, naming
        C{pipeline.options.media-anchor.<key>}.
    """
    from sipedge.media import parse_media_config

    if options:
        config = parse_media_config(options, "pipeline.options.media-anchor", config)
    return config


def relay_of(services: StageServices, config: MediaConfig) -> Any:
    """
    C{services.media}; for services without one, a relay built from
    C{config} on C{services.clock} (which must then be a reactor), with a
    warning: nothing closes its ports at shutdown.

    @raise ConfigError: if there is neither.
    """
    relay = services.media
    if relay is not None:
        return relay
    clock = services.clock
    if not IReactorUDP.providedBy(clock):
        raise ConfigError(
            "pipeline.stages: media-anchor needs a media relay (StageServices.media),"
            " or set media.anchor = false"
        )
    _log.warn(
        "No media relay given to the stages: media-anchor built its own from [media];"
        " it is not closed at shutdown"
    )
    return config.build_relay(clock)


def _media_anchor(options: dict[str, Any], section: MediaConfig, services: StageServices) -> Any:
    from sipedge.pipeline.stages import MediaAnchorStage

    config = media_config_of(section, options)
    if not config.anchor:
        return MediaAnchorStage(None, config)
    return MediaAnchorStage(
        relay_of(services, config),
        config,
        on_media_ended=getattr(services, "media_ended", None),
    )


def _option_names() -> tuple[str, ...]:
    from sipedge.media import MediaConfig

    return tuple(attrs.fields_dict(MediaConfig))


media_anchor = MediaStageFactory(
    "media-anchor",
    "Anchor every call's media in the relay: rewrite SDP offers and answers, open ports"
    " for a call and close them when it ends; 488/503 for offers the relay refuses.",
    _media_anchor,
    section=lambda config: config.media,
)
