"""The admin dashboard and its JSON: admin keys only, every owner's jobs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.models import Job


@pytest.fixture
def admin_auth(settings):
    from storage.db import session_factory
    from storage.keys import create_key

    with session_factory(settings.database_url)() as s:
        return {"Authorization": f"Bearer {create_key(s, 'ops', is_admin=True)}"}


def test_admin_endpoints_refuse_ordinary_keys(client, auth):
    for path in ("/v1/admin/summary", "/v1/admin/jobs"):
        response = client.get(path, headers=auth)
        assert response.status_code == 403
        assert response.get_json()["title"] == "Forbidden"
    assert client.get("/v1/admin/summary").status_code == 401


def test_summary_counts_every_owner(client, auth, other_auth, admin_auth, session):
    for headers in (auth, other_auth):
        client.post("/v1/jobs", json={"model": "noop"}, headers=headers)
    summary = client.get("/v1/admin/summary", headers=admin_auth).get_json()
    total = session.scalar(select(func.count()).select_from(Job))
    assert sum(summary["jobs"].values()) == total
    assert set(summary["queues"]) >= {"genq.control"}
    assert {"queue_s_p50", "run_s_p95"} <= set(summary["last_hour"])


def test_jobs_list_spans_owners_and_filters(client, auth, other_auth, owner, admin_auth):
    mine = client.post("/v1/jobs", json={"model": "noop"}, headers=auth).get_json()
    client.post("/v1/jobs", json={"model": "noop"}, headers=other_auth)
    listed = client.get(f"/v1/admin/jobs?owner={owner}", headers=admin_auth).get_json()["data"]
    assert [j["id"] for j in listed] == [mine["id"]]
    everyone = client.get("/v1/admin/jobs?limit=200", headers=admin_auth).get_json()["data"]
    assert len({j["owner"] for j in everyone}) >= 2
    bad = client.get("/v1/admin/jobs?limit=0", headers=admin_auth)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "limit"


def test_dashboard_page_is_served(client):
    response = client.get("/admin/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert b"/v1/admin/summary" in response.data
