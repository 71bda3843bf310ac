"""Image job parameters, checked without torch by the API and again by the pipelines."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipelines.image_params import SCHEDULERS, first_step, validate

VALID = {
    "width": 64,
    "height": 48,
    "num_inference_steps": 4,
    "guidance_scale": 7.5,
    "num_images": 1,
    "scheduler": None,
    "image_to_image": False,
    "strength": 0.8,
}


def test_registry_and_parameters_import_without_torch() -> None:
    script = (
        "import sys\n"
        "import pipelines, pipelines.base, pipelines.registry, pipelines.text_params\n"
        "import pipelines.image_params\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("family", ["sd", "sdxl", "sd3"])
def test_valid_requests_pass(family: str) -> None:
    validate(family, **VALID)
    for scheduler in SCHEDULERS[family]:
        validate(family, **{**VALID, "scheduler": scheduler, "image_to_image": True})


@pytest.mark.parametrize(
    ("family", "changes", "message"),
    [
        ("sd", {"width": 60}, "width must be a positive multiple of 8"),
        ("sd3", {"height": 40}, "height must be a positive multiple of 16"),
        ("sd", {"width": 16, "height": 16}, None),
        ("sd", {"num_inference_steps": 0}, "num_inference_steps"),
        ("sd", {"guidance_scale": float("nan")}, "guidance_scale"),
        ("sd", {"num_images": 0}, "num_images"),
        ("sd3", {"scheduler": "ddim"}, "scheduler must be one of"),
        ("sd", {"image_to_image": True, "strength": 1.5}, r"strength must be in \(0, 1\]"),
        ("sd", {"image_to_image": True, "strength": 0.2}, "strength .* leaves no step"),
    ],
)
def test_invalid_requests_name_the_parameter(family: str, changes: dict, message) -> None:
    if message is None:
        validate(family, **{**VALID, **changes})
        return
    with pytest.raises(ValueError, match=f"^{message}"):
        validate(family, **{**VALID, **changes})


def test_min_size_is_checked_after_the_multiple() -> None:
    with pytest.raises(ValueError, match="^width must be at least 32"):
        validate("sd", **{**VALID, "width": 16}, min_size=32)


def test_first_step_counts_like_each_diffusers_pipeline() -> None:
    # SD and SDXL truncate steps x strength; SD3 truncates what is left.
    assert first_step("sd", 4, 0.6) == 2 and first_step("sdxl", 4, 0.6) == 2
    assert first_step("sd3", 4, 0.6) == 1
    assert first_step("sd", 10, 1.0) == first_step("sd3", 10, 1.0) == 0
    assert first_step("sd", 4, 0.2) == 4  # nothing left to run: validate refuses it
    assert first_step("sd3", 4, 0.2) == 3
