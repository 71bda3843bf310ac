"""The Stable Diffusion pipeline against a tiny random-weight checkpoint built on the fly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline

from pipelines.base import ImageRequest, JobCanceled
from pipelines.loader import load_pipeline, resolve_device
from pipelines.noop import NoopPipeline
from pipelines.registry import NOOP, ModelSpec
from pipelines.sd import SDPipeline
from pipelines.sd3 import SD3Pipeline
from pipelines.sdxl import SDXLPipeline
from pipelines.tiny import make_tiny_sd

REQUEST = ImageRequest(
    prompt="a red fox in the snow",
    width=64,
    height=64,
    num_inference_steps=4,
    guidance_scale=7.5,
    num_images=1,
    seed=1234,
    negative_prompt="blurry",
)


def ignore_steps(step: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def pipeline(tiny_path: Path) -> SDPipeline:
    return SDPipeline.from_pretrained(tiny_path, "cpu")


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_tiny_checkpoint_loads_through_diffusers(tiny_path: Path) -> None:
    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_path, safety_checker=None, requires_safety_checker=False
    )
    assert pipe.vae_scale_factor == 8
    assert pipe.tokenizer.model_max_length == 77
    assert (tiny_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_tiny_checkpoint_is_deterministic(tmp_path: Path, tiny_path: Path) -> None:
    again = make_tiny_sd(tmp_path / "again")
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert (again / part).read_bytes() == (tiny_path / part).read_bytes()


def test_images_have_requested_size_and_count(pipeline: SDPipeline) -> None:
    result = pipeline(replace(REQUEST, width=64, height=48, num_images=2), ignore_steps)
    assert [image.size for image in result.images] == [(64, 48), (64, 48)]
    assert result.stages["denoising"] > 0
    assert result.output == {"scheduler": "ddim"}
    assert pipeline.vae_scale_factor == 8


def test_same_seed_same_pixels_other_seed_other_pixels(pipeline: SDPipeline) -> None:
    first = pixels(pipeline(REQUEST, ignore_steps).images[0])
    second = pixels(pipeline(REQUEST, ignore_steps).images[0])
    other = pixels(pipeline(replace(REQUEST, seed=REQUEST.seed + 1), ignore_steps).images[0])
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_on_step_reports_every_step_in_order(pipeline: SDPipeline) -> None:
    calls: list[tuple[int, int]] = []
    pipeline(REQUEST, lambda step, total: calls.append((step, total)))
    assert calls == [(step, 4) for step in range(5)]


def test_cancel_propagates_and_skips_decoding(
    pipeline: SDPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    decodes: list[object] = []
    original = AutoencoderKL.decode

    def spy(self, *args, **kwargs):
        decodes.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "decode", spy)
    steps: list[int] = []

    def on_step(step: int, total: int) -> None:
        steps.append(step)
        if step == 2:
            raise JobCanceled("canceled")

    with pytest.raises(JobCanceled):
        pipeline(REQUEST, on_step)
    assert steps == [0, 1, 2]
    assert decodes == []
    # The pipeline is still usable after a cancellation (and the spy sees a decode now).
    assert len(pipeline(REQUEST, ignore_steps).images) == 1
    assert len(decodes) == 1


def test_cancel_before_first_step_runs_nothing(pipeline: SDPipeline) -> None:
    def on_step(step: int, total: int) -> None:
        raise JobCanceled("canceled while queued")

    with pytest.raises(JobCanceled):
        pipeline(REQUEST, on_step)


def test_matches_diffusers_called_directly(tiny_path: Path, pipeline: SDPipeline) -> None:
    request = replace(REQUEST, width=64, height=48, num_images=2)
    ours = pipeline(request, ignore_steps).images

    pipe = StableDiffusionPipeline.from_pretrained(
        tiny_path, safety_checker=None, requires_safety_checker=False
    )
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        width=request.width,
        height=request.height,
        num_inference_steps=request.num_inference_steps,
        guidance_scale=request.guidance_scale,
        num_images_per_prompt=request.num_images,
        generator=torch.Generator("cpu").manual_seed(request.seed),
        output_type="np",
    ).images

    assert len(ours) == len(theirs) == 2
    for image, reference in zip(ours, theirs, strict=True):
        # Ours is PIL (uint8); diffusers' own float output rounds to the same bytes.
        expected = (reference * 255).round().astype(np.int16)
        assert np.abs(pixels(image) - expected).max() == 0


def test_loader_builds_each_family_and_noop(tiny_paths: dict[str, Path]) -> None:
    expected = {"sd": SDPipeline, "sdxl": SDXLPipeline, "sd3": SD3Pipeline}
    for family, cls in expected.items():
        spec = ModelSpec(name="tiny", kind="image", family=family, path=str(tiny_paths[family]))
        assert type(load_pipeline(spec, "cpu")) is cls
    assert isinstance(load_pipeline(NOOP, "cpu"), NoopPipeline)


def test_loader_rejects_unknown_family() -> None:
    spec = ModelSpec(name="mystery", kind="image", family="flux", path="/nowhere")
    with pytest.raises(ValueError, match="flux"):
        load_pipeline(spec, "cpu")


def test_resolve_device() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


def test_noop_returns_at_once_without_steps() -> None:
    calls: list[tuple[int, int]] = []
    result = NoopPipeline()(REQUEST, lambda step, total: calls.append((step, total)))
    assert result.images == [] and result.output == {"noop": True} and calls == []
