"""Image-job inputs beyond the prompt: schedulers, image-to-image uploads and artifact URLs."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image


def png_b64(size=(64, 64), color=(200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def body(**input_):
    return {"model": "tiny-sd", "input": {"prompt": "a red square", **input_}}


def fields(response) -> list[str]:
    assert response.status_code == 422, response.get_json()
    return [e["field"] for e in response.get_json()["errors"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"scheduler": "heun"}, "input.scheduler"),
        ({"image": png_b64(), "strength": 0.0}, "input.strength"),
        ({"image": png_b64(), "strength": 1.5}, "input.strength"),
        ({"image": "not base64!"}, "input.image"),
        ({"image": base64.b64encode(b"GIF89a....").decode()}, "input.image"),
        ({"image": png_b64(), "image_url": "http://x/v1/files/a/b/0.png"}, "input.image"),
        ({"image_url": "https://elsewhere.example/cat.png"}, "input.image_url"),
        ({"image": png_b64(), "strength": 0.1, "num_inference_steps": 4}, "input.strength"),
    ],
)
def test_bad_image_inputs_name_their_field(client, auth, params, field):
    assert field in fields(client.post("/v1/jobs", json=body(**params), headers=auth))


def test_noop_model_takes_no_image(client, auth):
    response = client.post(
        "/v1/jobs", headers=auth, json={"model": "noop", "input": {"scheduler": "ddim"}}
    )
    assert fields(response) == ["input.scheduler"]


def test_upload_is_stored_beside_the_job(client, auth, owner, session, settings):
    from storage.objects import make_store

    response = client.post(
        "/v1/jobs",
        headers=auth,
        json=body(image=f"data:image/png;base64,{png_b64()}", strength=0.5),
    )
    assert response.status_code == 202, response.get_json()
    job = response.get_json()
    assert "image" not in job["input"]  # no base64 in the database
    assert job["input"]["image_key"] == f"{owner}/{job['id']}/input.png"
    stored = make_store(settings).get(job["input"]["image_key"])
    assert Image.open(io.BytesIO(stored)).size == (64, 64)


def test_artifact_url_of_another_owner_is_refused(client, auth, other_auth, worker, wait_for):
    job = client.post("/v1/jobs", json=body(), headers=auth).get_json()
    url = wait_for(job["id"], auth)["artifacts"][0]["url"]
    mine = client.post("/v1/jobs", headers=auth, json=body(image_url=url, strength=0.5))
    assert mine.status_code == 202, mine.get_json()
    assert mine.get_json()["input"]["image_key"].endswith(f"{job['id']}/0.png")
    theirs = client.post("/v1/jobs", headers=other_auth, json=body(image_url=url))
    assert fields(theirs) == ["input.image_url"]


def test_idempotent_replay_uploads_nothing_new(client, auth, owner, settings):
    from storage.objects import make_store

    store = make_store(settings)
    request_body = body(image=png_b64(), strength=0.5)
    first = client.post(
        "/v1/jobs", headers={**auth, "Idempotency-Key": "img-1"}, json=request_body
    ).get_json()
    again = client.post("/v1/jobs", headers={**auth, "Idempotency-Key": "img-1"}, json=request_body)
    assert again.status_code == 200 and again.get_json()["id"] == first["id"]
    keys = [
        o.object_name
        for o in store.client.list_objects(store.bucket, prefix=f"{owner}/", recursive=True)
    ]
    assert keys == [f"{owner}/{first['id']}/input.png"]


def test_refused_batch_stores_no_input_images(client, auth, owner, settings):
    from storage.objects import make_store

    store = make_store(settings)
    response = client.post(
        "/v1/batches",
        headers=auth,
        json={
            "requests": [
                {"custom_id": "a", **body(image=png_b64(), strength=0.5)},
                {"custom_id": "b", **body(width=7)},
            ]
        },
    )
    assert response.status_code == 422
    assert list(store.client.list_objects(store.bucket, prefix=f"{owner}/")) == []
