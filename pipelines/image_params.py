"""Parameters of image jobs, checked without torch.

The API checks a request before queueing and the pipeline's input-validation stage again
before running it, with the same function, so a request the API accepts is one the worker can
run. Each error starts with the parameter's name, so the API can map it to a request field.
"""

from __future__ import annotations

# Schedulers a job may name, per family; ``None`` keeps the checkpoint's own. All are built
# from the checkpoint's scheduler config, so its noise schedule is kept.
SCHEDULERS: dict[str, tuple[str, ...]] = {
    "sd": ("ddim", "euler", "euler_a", "dpmpp_2m"),
    "sdxl": ("ddim", "euler", "euler_a", "dpmpp_2m"),
    # Flow matching: Euler on the flow's ODE (FlowMatchEulerDiscreteScheduler).
    "sd3": ("euler",),
}

# Width and height must be multiples of this: the VAE's scale factor (8), times the
# transformer's patch size (2) for SD3. Checkpoints with other VAEs report theirs through the
# pipeline's ``size_multiple``.
SIZE_MULTIPLES: dict[str, int] = {"sd": 8, "sdxl": 8, "sd3": 16}


def first_step(family: str, num_inference_steps: int, strength: float) -> int:
    """Index of the first scheduler step image-to-image runs: ``strength`` of the schedule is
    left to run, counted as each family's diffusers pipeline counts it (SD3 rounds later)."""
    n = num_inference_steps
    if family == "sd3":
        return int(max(n - min(n * strength, n), 0))
    return max(n - min(int(n * strength), n), 0)


def validate(
    family: str,
    *,
    width: int,
    height: int,
    num_inference_steps: int,
    guidance_scale: float,
    num_images: int,
    scheduler: str | None,
    image_to_image: bool,
    strength: float,
    size_multiple: int | None = None,
    min_size: int | None = None,
) -> None:
    """Raise ``ValueError`` naming the first parameter a ``family`` pipeline cannot run.

    ``size_multiple`` and ``min_size`` default to the family's; a loaded pipeline knows its
    checkpoint's (``ComposedPipeline.size_multiple``, ``.min_size``).
    """
    multiple = size_multiple or SIZE_MULTIPLES[family]
    smallest = min_size or multiple
    for name, value in (("width", width), ("height", height)):
        if value < 1 or value % multiple:
            raise ValueError(f"{name} must be a positive multiple of {multiple}, not {value}")
        if value < smallest:
            raise ValueError(f"{name} must be at least {smallest}, not {value}")
    if num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be at least 1, not {num_inference_steps}")
    if not guidance_scale >= 0:  # also rejects NaN
        raise ValueError(f"guidance_scale must be >= 0, not {guidance_scale}")
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, not {num_images}")
    if scheduler is not None and scheduler not in SCHEDULERS[family]:
        raise ValueError(f"scheduler must be one of {SCHEDULERS[family]}, not {scheduler!r}")
    if image_to_image:
        if not 0 < strength <= 1:
            raise ValueError(f"strength must be in (0, 1], not {strength}")
        if first_step(family, num_inference_steps, strength) >= num_inference_steps:
            raise ValueError(
                f"strength ({strength}) leaves no step of {num_inference_steps} to run; "
                "raise strength or num_inference_steps"
            )
