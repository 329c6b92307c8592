"""The dashboard's routes: the page and the JSON it polls."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from ..auth import public
from ..state import server_state

# The app serves these at /static (Flask's own "static" endpoint), open to all: they hold no data.
STATIC_FOLDER = Path(__file__).parent / "static"
dashboard = Blueprint("dashboard", __name__, template_folder="templates")


@dashboard.get("/")
@public
def page() -> str:
    """The page is open to a browser, which sends no key with it; with API keys, its numbers come only
    through /api/stats, which asks for one."""
    state = server_state(current_app)
    needs_key = bool(state.settings.api_keys)
    stats = state.summary() if needs_key else state.stats()
    return render_template("dashboard.html", stats=stats, needs_key=needs_key)


@dashboard.get("/api/stats")
def stats() -> Response:
    return jsonify(server_state(current_app).stats())


@dashboard.get("/api/recent")
def recent() -> Response:
    """The newest predictions as thumbnails (when --show-recent is on); `?after=N` sends only newer ones."""
    after = request.args.get("after", default=0, type=int)
    return jsonify(server_state(current_app).recent.as_dict(after))
