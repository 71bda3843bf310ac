"""Probes, metrics and the OpenAPI document."""

from __future__ import annotations

import dataclasses
import json
import re
import time

from sqlalchemy import func, select

from storage import jobs
from storage.models import Job

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_when_everything_answers(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "object_store": "ok"},
    }


def test_readyz_names_an_unreachable_broker(settings):
    from api import create_app

    broken = dataclasses.replace(settings, broker_url="redis://127.0.0.1:1/0")
    client = create_app({"TESTING": True, "GENQ_SETTINGS": broken}).test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 10  # a probe must answer while the broker is down
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready"
    assert body["checks"]["broker"].startswith("error")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["object_store"] == "ok"


def test_metrics_count_jobs_by_status(client, session, settings, owner):
    for _ in range(2):  # queued for good: nothing consumes this queue
        jobs.create_job(
            session,
            owner=owner,
            kind="noop",
            model="noop",
            input={},
            seed=0,
            queue=f"{settings.queue}.unconsumed",
        )
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "# TYPE genq_jobs gauge" in text
    gauges = dict(re.findall(r'^genq_jobs\{status="(\w+)"\} (\d+)$', text, re.M))
    assert set(gauges) == {"queued", "running", "succeeded", "failed", "canceled"}
    assert int(gauges["queued"]) >= 2
    # Transitions move jobs between gauges; only inserts (none meanwhile) change the sum.
    session.expire_all()
    total = session.scalar(select(func.count()).select_from(Job))
    assert sum(int(v) for v in gauges.values()) == total


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_openapi_describes_every_route(app, client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]

    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/static"):
            continue
        path = _openapi_path(rule.rule)
        served.setdefault(path, set()).update(m.lower() for m in rule.methods - IGNORED_METHODS)
    described = {
        path: {m for m in ops if m in ("get", "post", "put", "patch", "delete")}
        for path, ops in doc["paths"].items()
    }
    assert "/v1/files/{key}" in served  # the converter rewrite worked
    assert described == served


def test_openapi_path_parameters_are_declared(client):
    doc = client.get("/openapi.json").get_json()
    for path, ops in doc["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, method)
            assert op["responses"], (path, method)


def test_openapi_refs_resolve(client):
    doc = client.get("/openapi.json").get_json()
    refs = set(re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(doc)))
    assert "components/schemas/JobCreate" in refs
    for ref in refs:
        node = doc
        for part in ref.split("/"):
            assert part in node, ref
            node = node[part]


def test_every_url_a_job_advertises_is_served(client, auth):
    job = client.post("/v1/jobs", json={"model": "noop"}, headers=auth).get_json()
    for name, url in job["urls"].items():
        path = url.split("://", 1)[-1]
        path = path[path.index("/") :]
        method = "post" if name == "cancel" else "get"
        response = getattr(client, method)(path, headers=auth)
        assert response.status_code != 404, (name, url)
