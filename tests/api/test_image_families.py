"""Every image family through the API and a live worker, text-to-image and image-to-image."""

from __future__ import annotations

import io

import pytest
import requests
from PIL import Image

FAMILIES = ["tiny-sd", "tiny-sdxl", "tiny-sd3", "tiny-sd3-cached"]


def run(client, auth, wait_for, model, **input_):
    body = {
        "model": model,
        "input": {
            "prompt": "a red boat",
            "width": 64,
            "height": 64,
            "num_inference_steps": 3,
            "seed": 7,
            **input_,
        },
    }
    response = client.post("/v1/jobs", json=body, headers=auth)
    assert response.status_code == 202, response.get_json()
    return wait_for(response.get_json()["id"], auth)


def image_of(job) -> Image.Image:
    return Image.open(io.BytesIO(requests.get(job["artifacts"][0]["url"], timeout=10).content))


@pytest.mark.parametrize("model", FAMILIES)
def test_text_to_image_then_image_to_image(client, auth, worker, wait_for, model):
    first = run(client, auth, wait_for, model)
    assert first["status"] == "succeeded", first["error"]
    assert image_of(first).size == (64, 64)
    assert {"text_encoding", "denoising", "decoding"} <= {
        k.removeprefix("generate.") for k in first["metrics"]["stages"]
    }
    # Feed the result back in as the input image, by its artifact URL.
    second = run(
        client,
        auth,
        wait_for,
        model,
        image_url=first["artifacts"][0]["url"],
        strength=0.6,
        num_inference_steps=5,
    )
    assert second["status"] == "succeeded", second["error"]
    assert second["output"]["strength"] == 0.6
    assert second["progress"]["total_steps"] == 3  # int(5 * 0.6) of the 5 steps run
    assert image_of(second).text["genq:strength"] == "0.6"


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "euler_a", "dpmpp_2m"])
def test_scheduler_per_job(client, auth, worker, wait_for, scheduler):
    job = run(client, auth, wait_for, "tiny-sd", scheduler=scheduler)
    assert job["status"] == "succeeded", job["error"]
    assert job["output"]["scheduler"] == scheduler
    assert image_of(job).text["genq:scheduler"] == scheduler


def test_family_limits_are_checked_before_queueing(client, auth):
    response = client.post(
        "/v1/jobs",
        headers=auth,
        json={"model": "tiny-sd3", "input": {"prompt": "x", "width": 72, "height": 64}},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.get_json()["errors"]] == ["input.width"]
    response = client.post(
        "/v1/jobs",
        headers=auth,
        json={"model": "tiny-sd3", "input": {"prompt": "x", "scheduler": "ddim"}},
    )
    assert [e["field"] for e in response.get_json()["errors"]] == ["input.scheduler"]
