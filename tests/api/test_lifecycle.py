"""A job over HTTP, end to end: Postgres row, Redis task, live worker, diffusers, S3."""

from __future__ import annotations

import hashlib
import io

import requests
from PIL import Image


def submit(client, auth, body, **headers):
    return client.post("/v1/jobs", json=body, headers={**auth, **headers})


def test_image_job_runs_to_success_with_artifacts(client, auth, worker, wait_for, session):
    body = {
        "model": "tiny-sd",
        "input": {
            "prompt": "a red fox",
            "width": 64,
            "height": 48,
            "num_inference_steps": 3,
            "num_images": 2,
        },
    }
    response = submit(client, auth, body)
    assert response.status_code == 202
    job = response.get_json()
    assert job["status"] == "queued"
    assert job["kind"] == "image"
    assert job["urls"]["get"].endswith(f"/v1/jobs/{job['id']}")
    assert isinstance(job["seed"], int)  # chosen for the client, and recorded

    done = wait_for(job["id"], auth)
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == {"step": 3, "total_steps": 3, "phase": "done"}
    assert done["output"]["seed"] == job["seed"]
    assert done["output"]["images"] == 2
    metrics = done["metrics"]
    assert {"queue_s", "load_s", "run_s", "stages"} <= set(metrics)
    assert {"generate", "encode", "upload"} <= set(metrics["stages"])
    assert done["started_at"] and done["completed_at"]
    assert len(done["artifacts"]) == 2
    for artifact in done["artifacts"]:
        assert artifact["content_type"] == "image/png"
        assert artifact["expires_at"]
        data = requests.get(artifact["url"], timeout=10).content
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
        image = Image.open(io.BytesIO(data))
        assert image.format == "PNG"
        assert image.size == (64, 48)
        assert image.text["genq:seed"] == str(job["seed"])
        assert image.text["genq:model"] == "tiny-sd"
        assert image.text["genq:steps"] == "3"
        assert image.text["genq:scheduler"] == done["output"]["scheduler"]
    assert done["output"]["num_inference_steps"] == 3
    assert done["output"]["guidance_scale"] == 7.5


def test_progress_and_events_are_recorded(client, auth, worker, wait_for, session):
    from storage.jobs import events_of

    job = submit(client, auth, {"model": "tiny-sd", "input": {"prompt": "x", "seed": 7}})
    done = wait_for(job.get_json()["id"], auth)
    assert done["status"] == "succeeded"
    types = [e.type for e in events_of(session, done["id"])]
    assert types[0] == "running" and types[-1] == "succeeded"  # creation is not an event
    steps = [e.data["step"] for e in events_of(session, done["id"]) if e.type == "progress"]
    assert steps[:5] == [0, 1, 2, 3, 4]


def test_same_seed_same_pixels(client, auth, worker, wait_for):
    def run() -> bytes:
        body = {"model": "tiny-sd", "input": {"prompt": "same", "seed": 1234}}
        job = wait_for(submit(client, auth, body).get_json()["id"], auth)
        return requests.get(job["artifacts"][0]["url"], timeout=10).content

    first, second = run(), run()
    assert Image.open(io.BytesIO(first)).tobytes() == Image.open(io.BytesIO(second)).tobytes()


def test_prefer_wait_returns_the_finished_job(client, auth, worker):
    response = submit(
        client, auth, {"model": "tiny-sd", "input": {"prompt": "wait"}}, Prefer="wait=30"
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "succeeded"
    assert response.headers["Preference-Applied"] == "wait=30"


def test_noop_job_succeeds_without_artifacts(client, auth, worker, wait_for):
    job = submit(client, auth, {"model": "noop"}).get_json()
    done = wait_for(job["id"], auth)
    assert done["status"] == "succeeded"
    assert done["artifacts"] == []
    assert done["output"]["noop"] is True


def test_list_filters_and_paginates(client, auth, worker, wait_for):
    ids = [submit(client, auth, {"model": "noop"}).get_json()["id"] for _ in range(5)]
    for job_id in ids:
        wait_for(job_id, auth)
    seen, cursor = [], None
    while True:
        query = "/v1/jobs?limit=2&model=noop" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=auth).get_json()
        seen += [j["id"] for j in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))  # newest first, each exactly once
    assert client.get("/v1/jobs?status=failed", headers=auth).get_json()["data"] == []
    later = client.get("/v1/jobs?created_after=2999-01-01T00:00:00Z", headers=auth).get_json()
    assert later["data"] == []


def test_pipelines_stay_warm_between_jobs(client, auth, worker, wait_for):
    """One load per model per worker process: a second job of the model loads nothing."""
    jobs = []
    for _ in range(2):
        job = submit(client, auth, {"model": "tiny-sd", "input": {"prompt": "warm"}})
        jobs.append(wait_for(job.get_json()["id"], auth))
    assert all(j["status"] == "succeeded" for j in jobs)
    assert jobs[1]["metrics"]["load_s"] == 0.0
    assert jobs[1]["metrics"]["stages"]["load"] < 0.05


def test_run_seconds_count_each_stage_once(client, auth, worker, wait_for):
    job = submit(client, auth, {"model": "tiny-sd", "input": {"prompt": "sum"}}).get_json()
    metrics = wait_for(job["id"], auth)["metrics"]
    stages = metrics["stages"]
    top = sum(v for k, v in stages.items() if k != "load" and "." not in k)
    assert abs(metrics["run_s"] - top) < 1e-5
    assert stages["generate.denoising"] <= stages["generate"]
