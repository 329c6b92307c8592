"""The Flask app factory: configuration, model pool, metrics and routes wired in one place."""

from __future__ import annotations

import logging
import time
import uuid

import cv2
from flask import Flask, Response, g, request

from ..config import Settings
from ..logs import LOGGER_NAME, setup_logging
from ..models import load_model
from ..pool import ModelPool
from .auth import require_api_keys
from .body_deadline import BodyDeadline
from .cors import allow_cross_origin
from .errors import register_error_handlers
from .oip import oip
from .openapi import docs
from .recent import RecentFrames
from .routes import bp
from .state import ServerState, server_state

logger = logging.getLogger(LOGGER_NAME)


def _request_id() -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    given = request.headers.get("X-Request-ID", "")
    if 0 < len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        return given
    return uuid.uuid4().hex


def create_app(
    settings: Settings | None = None, pool: ModelPool | None = None, recent: RecentFrames | None = None
) -> Flask:
    """Build the app for one worker.

    `settings` defaults to the NOSETRACK_* environment. `pool` defaults to `settings.threads` instances of
    `settings.model`, each run once before the app is returned so /readyz is true from the first request.
    `recent` is the store of recent frames shared by all workers; by default this worker gets its own.
    """
    settings = settings or Settings.from_environment()
    setup_logging(settings.log_file, settings.log_level)
    # Parallelism comes from workers and threads; OpenCV's own pool (resize, warpAffine, imdecode) would run
    # on the same cores and cost more CPU per image than it saves (measured in bench/).
    cv2.setNumThreads(1)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    pool = pool or ModelPool(lambda: load_model(settings.model), settings.threads)
    state = ServerState(settings, pool, recent=recent or RecentFrames(settings.show_recent))
    app.extensions["nosetrack"] = state
    register_error_handlers(app)
    app.register_blueprint(bp)
    app.register_blueprint(oip)
    app.register_blueprint(docs)
    app.wsgi_app = BodyDeadline(app.wsgi_app, settings.body_timeout)

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        g.request_id = _request_id()

    # After start_request, so a refused or preflight request is timed and logged like any other.
    allow_cross_origin(app, settings.cors_origins)
    require_api_keys(app, settings.api_keys)

    @app.after_request
    def finish_request(response: Response) -> Response:
        seconds = time.perf_counter() - g.started
        route = request.url_rule.rule if request.url_rule else "unmatched"
        server_state(app).metrics.observe_request(route, response.status_code, seconds, g.get("error_code"))
        response.headers["X-Request-ID"] = g.request_id
        logger.info(
            "%s %s %d %.2f ms request_id=%s",
            request.method,
            request.path,
            response.status_code,
            seconds * 1000.0,
            g.request_id,
        )
        return response

    state.warm_up()
    logger.info("Model %s %s ready (%d instances)", pool.info.name, pool.info.version, pool.size)
    return app
