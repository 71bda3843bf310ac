"""genq's composed pipelines against diffusers' own, image for image.

Same tiny checkpoint, seed and parameters: genq's decoded floats must equal what diffusers'
pipeline returns with ``output_type="np"`` (float32, CPU), for every family and both modes,
and for Stable Diffusion with each scheduler a job may name.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusion3Img2ImgPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLPipeline,
)

from pipelines.base import ImageRequest, JobCanceled
from pipelines.composed import ComposedPipeline
from pipelines.image_params import SCHEDULERS
from pipelines.loader import image_pipeline_class
from pipelines.schedulers import DIFFUSION_SCHEDULERS

FAMILIES = ("sd", "sdxl", "sd3")
MODES = ("text_to_image", "image_to_image")
TOLERANCE = 1e-4

REQUEST = ImageRequest(
    prompt="a red fox in the snow",
    # Multiples of 16, so every family (SD3 patches its latents in twos) takes them.
    width=64,
    height=48,
    num_inference_steps=4,
    guidance_scale=7.5,
    num_images=2,
    seed=1234,
    negative_prompt="blurry",
)
# Diffusers' pipelines by family: text-to-image, image-to-image, and loading options.
DIFFUSERS: dict[str, tuple[type, type, dict[str, Any]]] = {
    "sd": (
        StableDiffusionPipeline,
        StableDiffusionImg2ImgPipeline,
        {"safety_checker": None, "requires_safety_checker": False},
    ),
    "sdxl": (
        StableDiffusionXLPipeline,
        StableDiffusionXLImg2ImgPipeline,
        {"add_watermarker": False},
    ),
    "sd3": (
        StableDiffusion3Pipeline,
        StableDiffusion3Img2ImgPipeline,
        {"text_encoder_3": None, "tokenizer_3": None},
    ),
}


def ignore_steps(step: int, total: int) -> None:
    pass


def input_image(width: int, height: int) -> PIL.Image.Image:
    noise = np.random.default_rng(0).random((height, width, 3))
    return PIL.Image.fromarray((noise * 255).astype(np.uint8))


def request_for(mode: str, **changes: Any) -> ImageRequest:
    request = replace(REQUEST, **changes)
    if mode == "image_to_image":
        request = replace(request, image=input_image(request.width, request.height), strength=0.6)
    return request


@pytest.fixture(scope="module")
def ours(tiny_paths: dict[str, Path]) -> dict[str, ComposedPipeline]:
    return {f: image_pipeline_class(f).from_pretrained(tiny_paths[f], "cpu") for f in FAMILIES}


@pytest.fixture(scope="module")
def theirs(tiny_paths: dict[str, Path]) -> dict[str, Any]:
    """Diffusers' text-to-image pipeline per family (image-to-image ones share its parts)."""
    loaded = {}
    for family in FAMILIES:
        text_to_image, _, options = DIFFUSERS[family]
        loaded[family] = text_to_image.from_pretrained(tiny_paths[family], **options)
    return loaded


def diffusers_images(
    theirs: dict[str, Any], family: str, request: ImageRequest, scheduler=None
) -> np.ndarray:
    text_to_image, image_to_image, _ = DIFFUSERS[family]
    components = dict(theirs[family].components)
    if scheduler is not None:
        components["scheduler"] = scheduler.from_config(components["scheduler"].config)
    if family == "sdxl":
        components["add_watermarker"] = False
    arguments: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "num_inference_steps": request.num_inference_steps,
        "guidance_scale": request.guidance_scale,
        "num_images_per_prompt": request.num_images,
        "generator": torch.Generator("cpu").manual_seed(request.seed),
        "output_type": "np",
    }
    if request.image is None:
        pipe = text_to_image(**components)
        arguments.update(width=request.width, height=request.height)
    else:
        pipe = image_to_image(**components)
        arguments.update(image=request.image, strength=request.strength)
        if family == "sd3":  # SD and SDXL take the size from the image
            arguments.update(width=request.width, height=request.height)
    pipe.set_progress_bar_config(disable=True)
    return pipe(**arguments).images


def genq_images(pipeline: ComposedPipeline, request: ImageRequest) -> np.ndarray:
    return np.stack(pipeline(request, ignore_steps, output_type="np").images)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_matches_diffusers(ours, theirs, family: str, mode: str) -> None:
    request = request_for(mode)
    expected = diffusers_images(theirs, family, request)
    actual = genq_images(ours[family], request)
    assert actual.shape == expected.shape == (2, 48, 64, 3)
    assert np.abs(actual - expected).max() <= TOLERANCE


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_matches_diffusers_without_guidance_or_negative(ours, theirs, family, mode) -> None:
    """No negative prompt: SDXL guides against zeros, the others against the empty prompt;
    guidance 1 runs the denoiser on the prompt alone."""
    for changes in ({"negative_prompt": None}, {"guidance_scale": 1.0, "num_images": 1}):
        request = request_for(mode, **changes)
        expected = diffusers_images(theirs, family, request)
        assert np.abs(genq_images(ours[family], request) - expected).max() <= TOLERANCE


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SCHEDULERS["sd"])
def test_each_sd_scheduler_matches_diffusers(ours, theirs, name: str, mode: str) -> None:
    request = request_for(mode, scheduler=name)
    expected = diffusers_images(theirs, "sd", request, scheduler=DIFFUSION_SCHEDULERS[name])
    result = ours["sd"](request, ignore_steps, output_type="np")
    assert np.abs(np.stack(result.images) - expected).max() <= TOLERANCE
    assert result.output["scheduler"] == name


def test_sdxl_scheduler_choice_matches_diffusers(ours, theirs) -> None:
    request = request_for("text_to_image", scheduler="dpmpp_2m")
    expected = diffusers_images(theirs, "sdxl", request, scheduler=DIFFUSION_SCHEDULERS["dpmpp_2m"])
    assert np.abs(genq_images(ours["sdxl"], request) - expected).max() <= TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_pil_output_is_the_float_output_rounded(ours, family: str) -> None:
    request = request_for("text_to_image", num_images=1)
    floats = genq_images(ours[family], request)[0]
    image = ours[family](request, ignore_steps).images[0]
    assert image.size == (request.width, request.height)
    expected = (floats * 255).round().astype(np.int16)
    assert np.array_equal(np.asarray(image, dtype=np.int16), expected)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_progress_reports_each_step_that_runs(ours, family: str, mode: str) -> None:
    calls: list[tuple[int, int]] = []
    ours[family](request_for(mode), lambda step, total: calls.append((step, total)))
    # Image-to-image at strength 0.6 runs the last 2 of 4 steps (SD3 rounds to 3).
    total = 4 if mode == "text_to_image" else {"sd": 2, "sdxl": 2, "sd3": 3}[family]
    assert calls == [(step, total) for step in range(total + 1)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_cancel_at_step_two_propagates_without_decoding(
    ours, family: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: list[object] = []
    monkeypatch.setattr(AutoencoderKL, "decode", lambda *args, **kwargs: decodes.append(args))
    steps: list[int] = []

    def on_step(step: int, total: int) -> None:
        steps.append(step)
        if step == 2:
            raise JobCanceled("canceled")

    with pytest.raises(JobCanceled):
        ours[family](request_for(mode, num_inference_steps=8), on_step)
    assert steps == [0, 1, 2]
    assert decodes == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_stage_seconds_and_provenance(ours, family: str, mode: str) -> None:
    result = ours[family](request_for(mode), ignore_steps)
    first = "latent_preparation" if mode == "text_to_image" else "image_encoding"
    names = ["input_validation", "timestep_preparation", "text_encoding", "conditioning", first]
    assert list(result.stages) == [*names, "denoising", "decoding"]
    assert all(seconds >= 0 for seconds in result.stages.values())
    assert result.stages["denoising"] > 0
    expected = {
        "scheduler": SCHEDULERS[family][0]
        if family == "sd3"
        else {"sd": "ddim", "sdxl": "euler"}[family]
    }
    if mode == "image_to_image":
        expected["strength"] = 0.6
    assert result.output == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_invalid_width_is_refused_by_input_validation(ours, family: str) -> None:
    pipeline = ours[family]
    width = pipeline.size_multiple + pipeline.size_multiple // 2
    with pytest.raises(ValueError, match=r"^width must be a positive multiple of") as caught:
        pipeline(replace(REQUEST, width=width), ignore_steps)
    assert caught.traceback[-1].path.name == "image_params.py"
    assert any(entry.path.name == "validation.py" for entry in caught.traceback)
    assert not any(entry.path.name == "text.py" for entry in caught.traceback)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"height": 0}, "height"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_images": 0}, "num_images"),
        ({"scheduler": "plms"}, "scheduler"),
        ({"image": input_image(64, 48), "strength": 0.0}, "strength"),
        ({"image": input_image(64, 48), "strength": 0.1}, "strength"),
        ({"image": "not an image"}, "image"),
    ],
)
def test_other_invalid_requests_name_their_field(ours, changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}"):
        ours["sd"](replace(REQUEST, **changes), ignore_steps)


def test_image_to_image_resizes_and_converts_the_input(ours) -> None:
    grey = PIL.Image.new("L", (100, 30), color=128)
    request = replace(REQUEST, image=grey, strength=1.0, num_images=1)
    (image,) = ours["sd"](request, ignore_steps).images
    assert image.size == (64, 48) and image.mode == "RGB"


def test_schedulers_are_fresh_per_request(ours) -> None:
    """Concurrent requests must never share a scheduler's step state."""
    stage = ours["sd"].text_to_image[1]
    first = stage.schedulers.create("euler")[1]
    second = stage.schedulers.create("euler")[1]
    assert first is not second
    assert first.config == second.config


@pytest.mark.parametrize("family", FAMILIES)
def test_health_check_runs_the_smallest_request(ours, family: str) -> None:
    pipeline = ours[family]
    request = pipeline.health_request()
    assert request.num_inference_steps == 1 and request.num_images == 1
    assert request.width == request.height == pipeline.min_size
    result = pipeline.check_health()
    assert np.shape(result.images[0]) == (request.height, request.width, 3)


def test_health_check_fails_on_non_finite_output(ours, monkeypatch: pytest.MonkeyPatch) -> None:
    original = AutoencoderKL.decode

    def overflowing(self, *args, **kwargs):
        sample = original(self, *args, **kwargs)[0]
        return (torch.full_like(sample, float("nan")),)

    monkeypatch.setattr(AutoencoderKL, "decode", overflowing)
    with pytest.raises(RuntimeError, match="non-finite"):
        ours["sd"].check_health()
