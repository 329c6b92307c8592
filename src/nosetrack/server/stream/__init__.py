"""WS /v1/track: one WebSocket, one stream of frames through its own tracker."""

from .routes import stream

__all__ = ["stream"]
