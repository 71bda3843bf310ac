"""Request schemas and their validation against the model registry.

Types and shapes are checked by pydantic (strict: ``"64"`` is not a width); per-model limits
come from the registry. Every problem is reported at once, each naming its field, and
nothing invalid is ever queued.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genq.webhooks.ssrf import UnsafeURL, check_url
from pipelines.image_params import SCHEDULERS
from pipelines.image_params import validate as validate_image
from pipelines.registry import ModelSpec, Registry, has_chat_template
from pipelines.text_params import DECODING_PARAMS, validate

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
    scheduler: str | None = Field(default=None, description="One of the family's schedulers.")
    image: str | None = Field(
        default=None, description="Image-to-image: a PNG/JPEG/WebP, base64 or a data: URL."
    )
    image_url: str | None = Field(
        default=None, description="Image-to-image: the URL of one of your genq artifacts."
    )
    strength: float | None = Field(
        default=None, description="Image-to-image: how much of the schedule runs (0, 1]."
    )


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"]
    content: str


class TextInput(BaseModel):
    """A masked diffusion LM job (LLaDA-style); see ``pipelines.dllm``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str | None = Field(default=None, min_length=1, description="The prompt.")
    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1, description="Chat turns, for models with a chat template."
    )
    gen_length: int | None = Field(default=None, ge=1, description="Tokens to generate.")
    block_length: int | None = Field(default=None, ge=1, description="Divides gen_length.")
    steps: int | None = Field(default=None, ge=1, description="A multiple of the blocks.")
    temperature: float | None = Field(default=None, ge=0, le=10)
    cfg_scale: float | None = Field(default=None, ge=0, le=50)
    remasking: Literal["low_confidence", "random"] | None = None
    threshold: float | None = Field(
        default=None, gt=0, le=1, description="Confidence-threshold parallel decoding."
    )
    batch: bool = Field(
        default=False, description="May share forwards with other jobs (no block stream)."
    )
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="Chosen if absent.")


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=128)
    input: dict[str, Any] = Field(
        default_factory=dict, description="ImageInput or TextInput, by the model's kind."
    )
    webhook: str | None = Field(
        default=None, max_length=2048, description="http(s) URL to POST job events to."
    )
    webhook_events_filter: list[Literal["start", "progress", "completed"]] = Field(
        default_factory=lambda: ["completed"],
        min_length=1,
        description="Which events to deliver (progress is throttled).",
    )


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def parse_job(
    body: Any, registry: Registry, allow_hosts: frozenset[str] = frozenset()
) -> tuple[ModelSpec, dict[str, Any], int]:
    """Validate a ``POST /v1/jobs`` body; returns (model, resolved input, seed).

    Raises :class:`FieldErrors` listing every bad field.
    """
    if not isinstance(body, dict):
        raise FieldErrors([{"field": "body", "message": "must be a JSON object"}])
    errors: list[dict[str, str]] = []
    try:
        JobCreate.model_validate(body)
    except ValidationError as exc:
        errors += [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    webhook = body.get("webhook")
    if isinstance(webhook, str) and webhook:
        try:  # refused at submit: a webhook may only reach public addresses
            check_url(webhook, allow_hosts)
        except UnsafeURL as exc:
            errors.append({"field": "webhook", "message": str(exc)})
    model = body.get("model")
    spec = registry.get(model) if isinstance(model, str) else None
    if spec is None and isinstance(model, str) and model:
        errors.append({"field": "model", "message": f"unknown model; one of {registry.names()}"})
    if spec is None:  # the input's schema depends on the model
        raise FieldErrors(errors)
    schema = TextInput if spec.kind == "text" else ImageInput
    given = None
    if isinstance(body.get("input", {}), dict):
        try:
            given = schema.model_validate(body.get("input", {}))
        except ValidationError as exc:
            errors += [
                {"field": _field(("input", *e["loc"])), "message": e["msg"]} for e in exc.errors()
            ]
    if errors or given is None:
        raise FieldErrors(errors)
    if isinstance(given, TextInput):
        return spec, *resolve_text_input(spec, given)
    return spec, *resolve_image_input(spec, given)


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
    image_to_image = given.image is not None or given.image_url is not None
    if given.image is not None and given.image_url is not None:
        bad("image", "give one of image, image_url")
    if spec.family in SCHEDULERS:
        resolved["scheduler"] = given.scheduler
        if image_to_image:
            resolved["strength"] = given.strength if given.strength is not None else 0.8
            resolved["image"], resolved["image_url"] = given.image, given.image_url
        if not errors:
            try:  # the pipeline's own checks, run here so nothing it refuses is queued
                validate_image(
                    spec.family,
                    width=resolved["width"],
                    height=resolved["height"],
                    num_inference_steps=resolved["num_inference_steps"],
                    guidance_scale=resolved["guidance_scale"],
                    num_images=resolved["num_images"],
                    scheduler=given.scheduler,
                    image_to_image=image_to_image,
                    strength=resolved.get("strength", 0.8),
                )
            except ValueError as exc:
                bad(str(exc).split()[0], str(exc))
    elif given.scheduler is not None or image_to_image or given.strength is not None:
        bad(
            "scheduler" if given.scheduler else "image",
            f"model {spec.name} takes no scheduler or input image",
        )
    if errors:
        raise FieldErrors(errors)
    seed = given.seed if given.seed is not None else secrets.randbelow(2**32)
    resolved["seed"] = seed
    return resolved, seed


def resolve_text_input(spec: ModelSpec, given: TextInput) -> tuple[dict[str, Any], int]:
    """Fill defaults from the registry; check limits and the decoding schedule's shape."""
    d, lim = spec.defaults, spec.limits
    resolved: dict[str, Any] = {
        "prompt": given.prompt or "",
        "messages": [m.model_dump() for m in given.messages] if given.messages else None,
        "gen_length": given.gen_length or d.gen_length,
        "block_length": given.block_length or d.block_length,
        "steps": given.steps or d.steps,
        "temperature": given.temperature if given.temperature is not None else d.temperature,
        "cfg_scale": given.cfg_scale if given.cfg_scale is not None else d.cfg_scale,
        "remasking": given.remasking or d.remasking,
        "threshold": given.threshold,
        "batch": given.batch,
    }
    errors: list[dict[str, str]] = []

    def bad(name: str, message: str) -> None:
        errors.append({"field": f"input.{name}", "message": message})

    if (given.prompt is None) == (given.messages is None):
        bad("prompt", "give exactly one of prompt, messages")
    elif given.messages is not None and not has_chat_template(spec):
        bad("messages", f"model {spec.name} has no chat template")
    chars = len(given.prompt or "") + sum(len(m.content) for m in given.messages or [])
    if chars > lim.max_prompt_chars:
        bad("prompt", f"must be at most {lim.max_prompt_chars} characters")
    if resolved["gen_length"] > lim.max_gen_length:
        errors.append(
            {
                "field": "input.gen_length",
                "message": f"must be at most {lim.max_gen_length} for model {spec.name}",
            }
        )
    if resolved["steps"] > lim.max_text_steps:
        errors.append(
            {
                "field": "input.steps",
                "message": f"must be at most {lim.max_text_steps} for model {spec.name}",
            }
        )
    if not errors:
        params = {k: resolved[k] for k in DECODING_PARAMS}
        try:
            validate(**params)
        except ValueError as exc:  # the message starts with the parameter's name
            name = str(exc).split()[0]
            errors.append({"field": f"input.{name}", "message": str(exc)})
    if errors:
        raise FieldErrors(errors)
    seed = given.seed if given.seed is not None else secrets.randbelow(2**32)
    resolved["seed"] = seed
    return resolved, seed


def webhook_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The job columns of a validated body's webhook subscription."""
    return {
        "webhook_url": body.get("webhook") or None,
        "webhook_events": sorted(set(body.get("webhook_events_filter") or ["completed"])),
    }


class FieldErrors(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors
