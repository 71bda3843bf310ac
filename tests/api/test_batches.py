"""Batches: many jobs in one request, all-or-nothing validation, results by custom_id."""

from __future__ import annotations

import json
import time
from dataclasses import replace

from sqlalchemy import func, select

from storage.models import Job

NOOP = {"model": "noop"}


def wait_batch(client, auth, batch_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        batch = client.get(f"/v1/batches/{batch_id}", headers=auth).get_json()
        if batch["status"] in ("completed", "canceled"):
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)


def test_batch_runs_and_returns_results_in_order(client, auth, worker):
    requests_ = [{"custom_id": f"r{i}", **NOOP} for i in range(4)]
    requests_.append({"custom_id": "img", "model": "tiny-sd", "input": {"prompt": "a boat"}})
    response = client.post(
        "/v1/batches", headers=auth, json={"requests": requests_, "metadata": {"run": "nightly"}}
    )
    assert response.status_code == 202, response.get_json()
    batch = response.get_json()
    assert batch["request_counts"]["total"] == 5 and batch["metadata"] == {"run": "nightly"}
    done = wait_batch(client, auth, batch["id"])
    assert done["status"] == "completed" and done["request_counts"]["succeeded"] == 5
    assert done["completed_at"] is not None
    lines = client.get(f"/v1/batches/{batch['id']}/results", headers=auth).get_data(as_text=True)
    results = [json.loads(line) for line in lines.splitlines()]
    assert [r["custom_id"] for r in results] == ["r0", "r1", "r2", "r3", "img"]
    assert all(r["status"] == "succeeded" for r in results)
    assert results[-1]["artifacts"][0]["content_type"] == "image/png"
    job = client.get(f"/v1/jobs/{results[0]['job_id']}", headers=auth).get_json()
    assert job["batch_id"] == batch["id"]


def test_jsonl_upload(client, auth, worker):
    body = "\n".join(json.dumps({"custom_id": f"l{i}", **NOOP}) for i in range(3)) + "\n"
    response = client.post("/v1/batches", headers=auth, data=body, content_type="application/jsonl")
    assert response.status_code == 202, response.get_json()
    assert wait_batch(client, auth, response.get_json()["id"])["request_counts"]["succeeded"] == 3


def test_one_bad_line_refuses_the_whole_batch(client, auth, owner, session):
    requests_ = [
        {"custom_id": "ok", **NOOP},
        {"custom_id": "bad", "model": "tiny-sd", "input": {"prompt": "x", "width": 60}},
        {"custom_id": "ok", **NOOP},
        {"model": "noop"},
    ]
    response = client.post("/v1/batches", headers=auth, json={"requests": requests_})
    assert response.status_code == 422
    fields = [e["field"] for e in response.get_json()["errors"]]
    assert fields == ["requests[1].input.width", "requests[2].custom_id", "requests[3].custom_id"]
    assert session.scalar(select(func.count()).select_from(Job).where(Job.owner == owner)) == 0


def test_cancel_batch(app, settings, auth):
    from api import create_app

    # A queue no worker reads: the jobs stay queued until the cancel.
    client = create_app(
        {"TESTING": True, "GENQ_SETTINGS": replace(settings, queue=f"{settings.queue}.nobody")}
    ).test_client()
    batch = client.post(
        "/v1/batches",
        headers=auth,
        json={"requests": [{"custom_id": str(i), **NOOP} for i in range(3)]},
    ).get_json()
    response = client.post(f"/v1/batches/{batch['id']}/cancel", headers=auth)
    assert response.status_code == 202
    canceled = response.get_json()
    assert canceled["status"] == "canceled" and canceled["request_counts"]["canceled"] == 3


def test_batches_are_private(client, auth, other_auth):
    batch = client.post(
        "/v1/batches", headers=auth, json={"requests": [{"custom_id": "a", **NOOP}]}
    ).get_json()
    for path in (f"/v1/batches/{batch['id']}", f"/v1/batches/{batch['id']}/results"):
        assert client.get(path, headers=other_auth).status_code == 404
    assert client.post(f"/v1/batches/{batch['id']}/cancel", headers=other_auth).status_code == 404


def test_jsonl_errors_name_the_clients_line_numbers(client, auth):
    lines = [
        json.dumps({"custom_id": "a", **NOOP}),
        "",
        json.dumps({"custom_id": "b", "model": "tiny-sd", "input": {"prompt": "x", "width": 7}}),
        "{not json",
    ]
    response = client.post(
        "/v1/batches", headers=auth, data="\n".join(lines), content_type="application/jsonl"
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["requests[3]"]
    response = client.post(
        "/v1/batches", headers=auth, data="\n".join(lines[:3]), content_type="application/jsonl"
    )
    assert [e["field"] for e in response.get_json()["errors"]] == ["requests[2].input.width"]
