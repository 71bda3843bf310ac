"""What a request needs, built once per process and opened lazily once per request."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import current_app, g
from sqlalchemy.orm import Session, sessionmaker

from genq.notify import Notifier
from genq.settings import Settings
from pipelines.registry import Registry
from storage.objects import ObjectStore


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker[Session]
    store: ObjectStore
    registry: Registry
    celery: Celery
    notifier: Notifier


def services() -> Services:
    return current_app.extensions["genq"]


def db() -> Session:
    session = g.get("db")
    if session is None:
        session = g.db = services().sessions()
    return session


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()
