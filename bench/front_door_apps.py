"""The applications bench/frontends.py serves on each candidate server, from the NOSETRACK_* environment.

front_door      nosetrack's ASGI front door (what `nosetrack serve` and Ray run)
a2wsgi_app      the Flask app under a2wsgi's WSGIMiddleware, with no front door (no streams, no budget)
flask_app       the Flask app as WSGI, for WSGI servers (no streams)
"""

from __future__ import annotations

from nosetrack.config import Settings
from nosetrack.server.app import create_app, create_front_door
from nosetrack.server.capacity import capacity


def front_door():
    return create_front_door(Settings.from_environment())


def a2wsgi_app():
    from a2wsgi import WSGIMiddleware

    settings = Settings.from_environment()
    return WSGIMiddleware(create_app(settings), workers=capacity(settings).requests)


def flask_app():
    return create_app(Settings.from_environment())
