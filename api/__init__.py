"""The HTTP API: ``create_app()`` builds it (``gunicorn 'api:create_app()'``).

This process never imports torch: it validates, records and publishes tasks by name.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from genq.settings import Settings, get_settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    from api import (
        admin,
        batches,
        completions,
        events,
        files,
        health,
        jobs,
        openapi,
        webhooks,
    )
    from api.errors import register_error_handlers
    from api.guards import register_guards
    from api.services import Services, close_db
    from genq.broker import make_celery
    from genq.notify import Notifier
    from pipelines.registry import load_registry
    from storage.db import session_factory
    from storage.objects import make_store

    test_config = dict(test_config or {})
    settings: Settings = test_config.pop("GENQ_SETTINGS", None) or get_settings()
    app = Flask(__name__)
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.json.sort_keys = False  # keep the job JSON in contract order, and skip the sort
    app.config.update(test_config)
    app.extensions["genq"] = Services(
        settings=settings,
        sessions=session_factory(settings.database_url),
        store=make_store(settings),
        registry=load_registry(settings.models_file),
        celery=make_celery(settings, "genq-api"),
        notifier=Notifier(settings.broker_url),
    )
    app.teardown_appcontext(close_db)
    register_error_handlers(app)
    register_guards(app)
    blueprints = (jobs, batches, events, completions, webhooks, admin, files, health, openapi)
    for module in blueprints:
        app.register_blueprint(module.bp)
    return app
