"""Webhooks end to end: a live worker, the control worker's sender, a real loopback receiver."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from standardwebhooks.webhooks import Webhook

from genq.webhooks.schedule import SCHEDULE_S

SCALE = 0.0001  # tests/conftest.py shrinks the retry schedule by this much
NOOP = {"model": "noop"}


def submit(client, auth, url, events=None, body=NOOP):
    payload = {**body, "webhook": url}
    if events:
        payload["webhook_events_filter"] = events
    response = client.post("/v1/jobs", json=payload, headers=auth)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def deliveries(client, auth, job_id):
    return client.get(f"/v1/jobs/{job_id}/deliveries", headers=auth).get_json()["data"]


def wait_deliveries(client, auth, job_id, until, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        found = deliveries(client, auth, job_id)
        if until(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries never settled: {found}")
        time.sleep(0.05)


def settled(found):
    return bool(found) and all(d["status"] != "pending" for d in found)


def secret_of(client, auth) -> str:
    return client.get("/v1/webhooks/secret", headers=auth).get_json()["data"][0]["secret"]


@pytest.fixture
def running(worker, control_worker):
    return True


def test_retries_until_accepted_with_stable_id_and_valid_signatures(
    client, auth, receiver, running, wait_for
):
    receiver.script(500, 503)
    job = submit(client, auth, receiver.url + "/hook")
    wait_for(job["id"], auth)
    (delivery,) = wait_deliveries(client, auth, job["id"], settled)
    assert delivery["status"] == "succeeded"
    assert delivery["event_type"] == "job.succeeded"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    assert len(receiver.requests) == 3
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert ids == {delivery["id"]}  # the same webhook-id on every retry
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1  # and the same body
    verifier = Webhook(secret_of(client, auth))  # an independent implementation
    for request in receiver.requests:
        payload = verifier.verify(request.body, request.headers)
        assert payload["type"] == "job.succeeded"
        assert payload["data"]["id"] == job["id"] and payload["data"]["status"] == "succeeded"
    # Attempts follow the (scaled) schedule: each waits at least its delay after the last.
    started = [datetime.fromisoformat(a["started_at"]) for a in delivery["attempts"]]
    for n in (1, 2):
        gap = (started[n] - started[n - 1]).total_seconds()
        assert gap >= SCHEDULE_S[n] * SCALE * 0.9, (n, gap)


def test_delivery_log_records_each_attempt(client, auth, receiver, running, wait_for):
    receiver.script(receiver.Reply(status=500, body=b"boom: database down"), 200)
    job = submit(client, auth, receiver.url)
    wait_for(job["id"], auth)
    (delivery,) = wait_deliveries(client, auth, job["id"], settled)
    first, second = delivery["attempts"]
    assert first["status_code"] == 500 and first["response_excerpt"] == "boom: database down"
    assert first["latency_ms"] >= 0 and first["started_at"]
    assert second["status_code"] == 200 and second["error"] is None


def test_event_filter_start_and_completed(client, auth, receiver, running, wait_for):
    job = submit(client, auth, receiver.url, events=["start", "completed"])
    wait_for(job["id"], auth)
    found = wait_deliveries(client, auth, job["id"], lambda f: len(f) == 2 and settled(f))
    assert [d["event_type"] for d in found] == ["job.started", "job.succeeded"]
    assert all(d["status"] == "succeeded" for d in found)
    types = sorted(json.loads(r.body)["type"] for r in receiver.requests)
    assert types == ["job.started", "job.succeeded"]


def test_progress_webhooks_are_throttled(client, auth, receiver, running, wait_for):
    body = {"model": "tiny-sd", "input": {"prompt": "x", "num_inference_steps": 6}}
    job = submit(client, auth, receiver.url, events=["progress"], body=body)
    wait_for(job["id"], auth)
    time.sleep(0.5)
    found = deliveries(client, auth, job["id"])
    # Seven progress events (steps 0..6 and uploading), one webhook per interval (an hour).
    assert [d["event_type"] for d in found] == ["job.progress"]


def test_gone_disables_the_endpoint(client, auth, receiver, running, wait_for):
    receiver.script(410)
    first = submit(client, auth, receiver.url)
    wait_for(first["id"], auth)
    (delivery,) = wait_deliveries(client, auth, first["id"], settled)
    assert delivery["status"] == "failed" and len(delivery["attempts"]) == 1
    second = submit(client, auth, receiver.url)
    wait_for(second["id"], auth)
    (skipped,) = wait_deliveries(client, auth, second["id"], settled)
    assert skipped["status"] == "failed" and skipped["attempts"] == []
    assert "disabled" in skipped["last_error"]
    assert len(receiver.requests) == 1  # nothing more was sent to it


def test_redirects_are_failures_and_not_followed(client, auth, receiver, running, wait_for):
    moved = receiver.Reply(status=302, headers={"Location": receiver.url + "/elsewhere"})
    receiver.script(moved, 200)
    job = submit(client, auth, receiver.url + "/hook")
    wait_for(job["id"], auth)
    (delivery,) = wait_deliveries(client, auth, job["id"], settled)
    assert [a["status_code"] for a in delivery["attempts"]] == [302, 200]
    assert [r.path for r in receiver.requests] == ["/hook", "/hook"]


def test_redeliver_sends_again_with_the_same_id(client, auth, receiver, running, wait_for):
    job = submit(client, auth, receiver.url)
    wait_for(job["id"], auth)
    (delivery,) = wait_deliveries(client, auth, job["id"], settled)
    response = client.post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=auth)
    assert response.status_code == 202
    wait_deliveries(client, auth, job["id"], lambda f: len(f[0]["attempts"]) == 2 and settled(f))
    assert [r.headers["webhook-id"] for r in receiver.requests] == [delivery["id"]] * 2


def test_rotation_signs_with_both_secrets_during_overlap(client, auth, receiver, running, wait_for):
    old = secret_of(client, auth)
    rotated = client.post("/v1/webhooks/secret/rotate", headers=auth).get_json()["data"]
    new = rotated[0]["secret"]
    assert new != old and {s["secret"] for s in rotated} == {old, new}
    assert rotated[1]["expires_at"] is not None  # the old one signs until then
    job = submit(client, auth, receiver.url)
    wait_for(job["id"], auth)
    wait_deliveries(client, auth, job["id"], settled)
    (request,) = receiver.requests
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)


def test_canceled_queued_job_delivers_completed(client, auth, receiver, unpublished_job, running):
    job = unpublished_job(webhook_url=receiver.url, webhook_events=["completed"])
    client.post(f"/v1/jobs/{job.id}/cancel", headers=auth)
    (delivery,) = wait_deliveries(client, auth, job.id, settled)
    assert delivery["event_type"] == "job.canceled" and delivery["status"] == "succeeded"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://0x0a000001/",
        "http://2130706434/",
        "http://0177.0.0.2/",
        "http://[::1]/",
        "http://100.64.0.1/",
        "ftp://example.com/",
        "http://nonexistent.invalid/",
        "http://localhost/",
    ],
)
def test_blocked_addresses_are_refused_at_submit(client, auth, owner, session, url):
    from sqlalchemy import func, select

    from storage.models import Job

    response = client.post("/v1/jobs", json={**NOOP, "webhook": url}, headers=auth)
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["webhook"]
    assert session.scalar(select(func.count()).select_from(Job).where(Job.owner == owner)) == 0


def test_bad_event_filter_is_refused(client, auth):
    response = client.post(
        "/v1/jobs",
        headers=auth,
        json={**NOOP, "webhook": "http://127.0.0.1:9/", "webhook_events_filter": ["finished"]},
    )
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"].startswith("webhook_events_filter")


def test_other_owners_cannot_see_or_redeliver(
    client, auth, other_auth, receiver, running, wait_for
):
    job = submit(client, auth, receiver.url)
    wait_for(job["id"], auth)
    (delivery,) = wait_deliveries(client, auth, job["id"], settled)
    assert client.get(f"/v1/jobs/{job['id']}/deliveries", headers=other_auth).status_code == 404
    response = client.post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=other_auth)
    assert response.status_code == 404


def test_batch_webhook_applies_to_each_request(client, auth, receiver, running):
    batch = client.post(
        "/v1/batches",
        headers=auth,
        json={
            "webhook": receiver.url,
            "webhook_events_filter": ["completed"],
            "requests": [{"custom_id": str(i), **NOOP} for i in range(3)],
        },
    ).get_json()
    deadline = time.monotonic() + 30
    while len(receiver.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    payloads = [json.loads(r.body) for r in receiver.requests]
    state = client.get(f"/v1/batches/{batch['id']}", headers=auth).get_json()
    assert sorted(p["type"] for p in payloads) == ["job.succeeded"] * 3, state
    assert {p["data"]["batch_id"] for p in payloads} == {batch["id"]}


def test_batch_webhook_is_checked_at_submit(client, auth):
    response = client.post(
        "/v1/batches",
        headers=auth,
        json={"webhook": "http://10.1.2.3/hook", "requests": [{"custom_id": "a", **NOOP}]},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["requests[0].webhook"]
