"""The Flask app factory: configuration, model pool, metrics and routes wired in one place."""

from __future__ import annotations

import functools
import logging

from flask import Flask

from ..config import Settings
from ..logs import LOGGER_NAME, setup_logging
from ..models import load_served_model, model_sources
from ..pool import ModelPool
from . import request_log
from .auth import require_api_keys
from .cors import allow_cross_origin
from .dashboard.recent import RecentFrames
from .dashboard.views import STATIC_FOLDER, dashboard
from .errors import protocol_error, register_error_handlers
from .front_door import FrontDoor, raise_refusal
from .oip import oip
from .openapi import docs
from .routes import bp
from .state import ServerState
from .stream import stream

logger = logging.getLogger(LOGGER_NAME)


def create_app(
    settings: Settings | None = None,
    pools: list[ModelPool] | None = None,
    recent: RecentFrames | None = None,
) -> Flask:
    """Build the app for one worker.

    `settings` defaults to the NOSETRACK_* environment. `pools` defaults to one pool per model that
    `settings.models` names, of `settings.model_instances` instances each; every instance is run once before
    the app is returned, so /readyz is true from the first request. `recent` is the store of recent frames
    shared by all workers; by default this worker gets its own.
    """
    settings = settings or Settings.from_environment()
    setup_logging(settings.log_file, settings.log_level)
    app = Flask(__name__, static_folder=STATIC_FOLDER)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    pools = pools or [
        ModelPool(
            functools.partial(load_served_model, source, settings.calibration, settings.min_face),
            settings.model_instances,
        )
        for source in model_sources(settings.models)
    ]
    state = ServerState(settings, pools, recent=recent or RecentFrames(settings.show_recent))
    app.extensions["nosetrack"] = state
    register_error_handlers(app, {oip.url_prefix: protocol_error})
    app.before_request(raise_refusal)
    for blueprint in (bp, dashboard, oip, docs, stream):
        app.register_blueprint(blueprint)
    request_log.init_app(app)
    allow_cross_origin(app, settings.cors_origins)
    require_api_keys(app, settings.api_keys)
    state.warm_up()
    for pool in pools:
        logger.info("Model %s %s ready (%d instances)", pool.info.name, pool.info.version, pool.size)
    return app


def create_front_door(
    settings: Settings | None = None,
    pools: list[ModelPool] | None = None,
    recent: RecentFrames | None = None,
) -> FrontDoor:
    """The ASGI application of one worker (or one Ray replica): `create_app`'s Flask app behind the front
    door that reads bodies whole, serves streams, and keeps the worker's limits."""
    return FrontDoor(create_app(settings, pools, recent))
