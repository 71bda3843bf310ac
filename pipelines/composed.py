"""The composed pipeline: a family's components and its two lists of stages.

A concrete pipeline (``pipelines.sd``, ``pipelines.sdxl``, ``pipelines.sd3``) names the
components it needs and builds its text-to-image and image-to-image stages from them; this base
loads the components with diffusers, runs the stages for a request and reports each stage's
seconds. Whether a request is image-to-image is whether it carries an ``image``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor

from pipelines.accel import accelerate, torch_dtype
from pipelines.base import GenerationResult, ImageRequest, OnStep
from pipelines.registry import Accel
from pipelines.stages import PipelineStage, State


class ComposedPipeline:
    family: ClassVar[str]
    # The diffusers pipeline class whose checkpoints this one loads.
    diffusers_class: ClassVar[type]
    required_components: ClassVar[tuple[str, ...]]
    # Components genq does not use, not loaded (safety checker, IP-adapter image encoder).
    unused_components: ClassVar[tuple[str, ...]] = ()
    load_options: ClassVar[dict[str, Any]] = {}
    denoiser_name: ClassVar[str]

    text_to_image: list[PipelineStage]
    image_to_image: list[PipelineStage]

    def __init__(
        self,
        components: Mapping[str, Any],
        device: str,
        *,
        config: Mapping[str, Any] | None = None,
        accel: Accel | None = None,
    ):
        """``components`` as diffusers loads them; ``config`` is the checkpoint's
        ``model_index.json`` settings; ``accel`` tells the stages what was applied."""
        missing = [name for name in self.required_components if components.get(name) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} needs components {missing}")
        self.components = dict(components)
        self.device = device
        self.config = dict(config or {})
        self.accel = accel or Accel()
        vae = self.components["vae"]
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        # RGB conversion lets image-to-image take greyscale or RGBA inputs.
        self.image_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True
        )
        self.build()

    def build(self) -> None:
        """Set ``text_to_image`` and ``image_to_image`` from ``self.components``."""
        raise NotImplementedError

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.components[self.denoiser_name]

    @property
    def size_multiple(self) -> int:
        """Width and height must be multiples of this."""
        return self.vae_scale_factor

    @property
    def min_size(self) -> int:
        """The smallest width and height the denoiser takes."""
        return self.size_multiple

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str,
        accel: Accel | None = None,
        dtype: torch.dtype | None = None,
    ) -> Self:
        """Load a diffusers-layout checkpoint from a local directory; never downloads."""
        accel = accel or Accel()
        dtype = dtype or torch_dtype(accel, device)
        loaded = cls.diffusers_class.from_pretrained(
            path,
            local_files_only=True,
            **_absent_components(path, cls.unused_components),
            **cls.load_options,
        )
        # Cast after loading: diffusers renamed its dtype argument across releases.
        loaded = loaded.to(device, dtype)
        components = dict(loaded.components)
        cls.prepare_components(components, dtype)
        accelerate(components[cls.denoiser_name], accel)
        return cls(components, device, config=loaded.config, accel=accel)

    @classmethod
    def prepare_components(cls, components: dict[str, Any], dtype: torch.dtype) -> None:
        """Family-specific fixes after loading (SDXL keeps its VAE in float32)."""

    @torch.no_grad()
    def __call__(
        self, request: ImageRequest, on_step: OnStep, *, output_type: str = "pil"
    ) -> GenerationResult:
        """Generate ``request.num_images`` images; a JobCanceled from ``on_step`` propagates.

        ``output_type="np"`` returns float arrays in [0, 1] (height, width, 3) instead of PIL
        images: what diffusers' ``output_type="np"`` returns, for comparisons and health checks.
        """
        stages = self.image_to_image if request.image is not None else self.text_to_image
        state = State(
            request=request,
            on_step=on_step,
            generator=torch.Generator(self.device).manual_seed(request.seed),
            output_type=output_type,
        )
        for stage in stages:
            state = stage(state)
        output: dict[str, Any] = {"scheduler": state.scheduler_name}
        if state.image_to_image:
            output["strength"] = request.strength
        return GenerationResult(images=state.images, stages=dict(state.stages), output=output)

    def health_request(self) -> ImageRequest:
        """The cheapest request that still runs every text-to-image stage: one step, one
        image of the smallest valid size."""
        size = self.min_size
        return ImageRequest(
            prompt="health check",
            width=size,
            height=size,
            num_inference_steps=1,
            guidance_scale=1.0,
            num_images=1,
            seed=0,
        )

    def check_health(self) -> GenerationResult:
        """Run :meth:`health_request`; raise ``RuntimeError`` unless it gives one finite image
        of the requested size (NaNs, e.g. a VAE overflowing in float16, fail it)."""
        request = self.health_request()
        result = self(request, lambda step, total: None, output_type="np")
        shapes = [np.shape(image) for image in result.images]
        if shapes != [(request.height, request.width, 3)]:
            raise RuntimeError(
                f"health check: expected one {request.height}x{request.width} "
                f"RGB image, got shapes {shapes}"
            )
        if not np.isfinite(result.images[0]).all():
            raise RuntimeError("health check: the image has non-finite values")
        return result


def _absent_components(path: str | Path, unused: tuple[str, ...]) -> dict[str, None]:
    """Components to load as ``None``: those genq does not use, and those the checkpoint
    leaves out (``[null, null]`` in model_index.json, e.g. SD3 without its T5 encoder)."""
    index = json.loads((Path(path) / "model_index.json").read_text())
    absent = {name for name, entry in index.items() if entry == [None, None]}
    return {name: None for name in sorted(absent | set(unused))}
