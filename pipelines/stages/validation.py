"""Input validation: the request against the family's rules, before any model runs."""

from __future__ import annotations

from pipelines.image_params import validate
from pipelines.stages.base import PipelineStage, State


class InputValidationStage(PipelineStage):
    """Raises ``ValueError`` naming the offending field; concise errors over silent fixes."""

    name = "input_validation"

    def __init__(self, family: str, size_multiple: int, min_size: int):
        self.family = family
        self.size_multiple = size_multiple
        self.min_size = min_size

    def forward(self, state: State) -> State:
        request = state.request
        validate(
            self.family,
            width=request.width,
            height=request.height,
            num_inference_steps=request.num_inference_steps,
            guidance_scale=request.guidance_scale,
            num_images=request.num_images,
            scheduler=request.scheduler,
            image_to_image=state.image_to_image,
            strength=request.strength,
            size_multiple=self.size_multiple,
            min_size=self.min_size,
        )
        if state.image_to_image:
            import PIL.Image

            if not isinstance(request.image, PIL.Image.Image):
                raise ValueError(f"image must be a PIL image, not {type(request.image).__name__}")
        if state.output_type not in ("pil", "np"):
            raise ValueError(f"output_type must be 'pil' or 'np', not {state.output_type!r}")
        return state
