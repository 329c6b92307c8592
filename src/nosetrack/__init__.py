"""nosetrack: find the nose (and the face around it) in images and video frames, over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .async_client import AsyncClient
    from .client import Client
    from .models import load_model
    from .tracking import Tracker, TrackerOptions, track


def __getattr__(name: str):
    # Imported on first use, so `import nosetrack` stays cheap for a client that never loads a model.
    if name == "Client":
        from .client import Client

        return Client
    if name == "AsyncClient":
        from .async_client import AsyncClient

        return AsyncClient
    if name == "load_model":
        from .models import load_model

        return load_model
    if name in ("Tracker", "TrackerOptions", "track"):
        from . import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'nosetrack' has no attribute {name!r}")


__all__ = ["AsyncClient", "Client", "Tracker", "TrackerOptions", "__version__", "load_model", "track"]
