"""Request schemas and their validation against the model registry.

Types and shapes are checked by pydantic (strict: ``"64"`` is not a width); per-model limits
come from the registry. Every problem is reported at once, each naming its field, and
nothing invalid is ever queued.
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.registry import ModelSpec, Registry

MAX_SEED = 2**63 - 1


class ImageInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str | None = Field(default=None, description="What to draw.")
    negative_prompt: str | None = Field(default=None, description="What to steer away from.")
    width: int | None = Field(default=None, description="Pixels; a multiple of the model's.")
    height: int | None = Field(default=None, description="Pixels; a multiple of the model's.")
    num_inference_steps: int | None = Field(default=None, ge=1)
    guidance_scale: float | None = Field(default=None, ge=0, le=50)
    num_images: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="Chosen if absent.")


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=128)
    input: ImageInput = Field(default_factory=ImageInput)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def parse_job(body: Any, registry: Registry) -> tuple[ModelSpec, dict[str, Any], int]:
    """Validate a ``POST /v1/jobs`` body; returns (model, resolved input, seed).

    Raises :class:`FieldErrors` listing every bad field.
    """
    if not isinstance(body, dict):
        raise FieldErrors([{"field": "body", "message": "must be a JSON object"}])
    try:
        request = JobCreate.model_validate(body)
    except ValidationError as exc:
        raise FieldErrors(
            [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        ) from None
    spec = registry.get(request.model)
    if spec is None:
        raise FieldErrors(
            [{"field": "model", "message": f"unknown model; one of {registry.names()}"}]
        )
    return spec, *resolve_image_input(spec, request.input)


def resolve_image_input(spec: ModelSpec, given: ImageInput) -> tuple[dict[str, Any], int]:
    """Fill defaults from the registry and check the model's limits."""
    d, lim = spec.defaults, spec.limits
    resolved: dict[str, Any] = {
        "prompt": given.prompt,
        "negative_prompt": given.negative_prompt,
        "width": given.width if given.width is not None else d.width,
        "height": given.height if given.height is not None else d.height,
        "num_inference_steps": given.num_inference_steps or d.num_inference_steps,
        "guidance_scale": (
            given.guidance_scale if given.guidance_scale is not None else d.guidance_scale
        ),
        "num_images": given.num_images or d.num_images,
    }
    errors: list[dict[str, str]] = []

    def bad(name: str, message: str) -> None:
        errors.append({"field": f"input.{name}", "message": message})

    if spec.kind == "image":
        if not given.prompt or not given.prompt.strip():
            bad("prompt", "is required for image models")
        elif len(given.prompt) > lim.max_prompt_chars:
            bad("prompt", f"must be at most {lim.max_prompt_chars} characters")
    for name, low, high in (
        ("width", lim.min_width, lim.max_width),
        ("height", lim.min_height, lim.max_height),
    ):
        value = resolved[name]
        if not low <= value <= high:
            bad(name, f"must be between {low} and {high} for model {spec.name}")
        elif value % lim.size_multiple:
            bad(name, f"must be a multiple of {lim.size_multiple} for model {spec.name}")
    if resolved["num_inference_steps"] > lim.max_steps:
        bad("num_inference_steps", f"must be at most {lim.max_steps} for model {spec.name}")
    if resolved["num_images"] > lim.max_images:
        bad("num_images", f"must be at most {lim.max_images} for model {spec.name}")
    if errors:
        raise FieldErrors(errors)
    seed = given.seed if given.seed is not None else secrets.randbelow(2**32)
    resolved["seed"] = seed
    return resolved, seed


class FieldErrors(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors
