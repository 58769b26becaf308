"""The WSGI application factory (gunicorn: `metacrm.platform.app:create_app()`)."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request

from .config import Config
from .runtime import Runtime
from .setup import build_runtime, secret_key

FALLBACK_CSP = "default-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


def create_app(config: Config | None = None, runtime: Runtime | None = None) -> Flask:
    config = config or Config.from_env()
    runtime = runtime or build_runtime(config)
    app = Flask(__name__, template_folder="web/templates", static_folder="web/static")
    app.config["SECRET_KEY"] = config.secret_key or secret_key(runtime)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = bool(config.cookie_secure)  # METACRM_COOKIE_SECURE, behind HTTPS
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    app.json.sort_keys = False
    app.json.ensure_ascii = False
    app.extensions["metacrm"] = runtime

    from .api import build_blueprint
    from .web import register as register_web

    app.register_blueprint(build_blueprint(runtime))
    register_web(app)
    for feature in runtime.features:
        if feature.on_app is not None:
            feature.on_app(app)

    @app.errorhandler(404)
    def not_found(exc):
        if request.path.startswith("/api/"):
            return jsonify({"error": {"code": "not_found", "message": "No such endpoint."}}), 404
        return exc

    @app.errorhandler(405)
    def not_allowed(exc):
        if request.path.startswith("/api/"):
            return jsonify({"error": {"code": "method_not_allowed", "message": "Method not allowed here."}}), 405
        return exc

    @app.errorhandler(Exception)
    def unexpected(exc):
        # Blueprints map their own errors first (the API: api/__init__.py); this catches the
        # rest, e.g. a web page while the database restarts: 503, never a traceback page.
        from werkzeug.exceptions import HTTPException

        from .db import is_database_unavailable

        if isinstance(exc, HTTPException):
            return exc
        if is_database_unavailable(exc):
            from .api import database_unavailable

            if request.path.startswith("/api/"):
                return database_unavailable(exc)
            logging.getLogger(__name__).warning("database unavailable on %s %s", request.method, request.path)
            page = ("<!doctype html><title>Temporarily unavailable</title><h1>Temporarily unavailable</h1>"
                    "<p>The database is not reachable right now. Please try again in a moment.</p>")
            return page, 503, {"Content-Type": "text/html; charset=utf-8", "Retry-After": "2"}
        from .api import too_large_total, value_out_of_range_response

        if too_large_total(exc):
            if request.path.startswith("/api/"):
                return value_out_of_range_response()
            page = ("<!doctype html><title>Total too large</title><h1>Total too large</h1>"
                    "<p>A total on this page is too large to compute. Narrow the filter or the period.</p>")
            return page, 422, {"Content-Type": "text/html; charset=utf-8"}
        raise exc

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if not g.get("frame_ancestors"):  # an embeddable page says who may frame it in its CSP
            response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # Pages set their own policy (web.CSP); everything else (static files, API answers, error
        # pages outside the web blueprint) may load nothing and may not be framed.
        response.headers.setdefault("Content-Security-Policy", FALLBACK_CSP)
        return response

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return app
