"""Turn a registry entry into a ready pipeline on a device. Imported only by workers."""

from __future__ import annotations

from pipelines.base import Pipeline, TextPipeline
from pipelines.registry import IMAGE_FAMILIES, ModelSpec


def resolve_device(name: str) -> str:
    """``auto`` picks CUDA when present, else CPU; any other name passes through."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_pipeline(spec: ModelSpec, device: str) -> Pipeline | TextPipeline:
    """Build the pipeline for ``spec``; torch is imported only for families that need it."""
    if spec.family == "noop":
        from pipelines.noop import NoopPipeline

        return NoopPipeline()
    if spec.family in IMAGE_FAMILIES:
        if not spec.path:
            raise ValueError(f"model {spec.name!r} (family {spec.family!r}) has no path")
        # Half precision on CUDA unless the registry's accel.dtype says otherwise.
        return image_pipeline_class(spec.family).from_pretrained(spec.path, device, spec.accel)
    if spec.family == "dllm":
        import torch

        from pipelines.dllm import MaskedDiffusionLM

        if not spec.path:
            raise ValueError(f"model {spec.name!r} (family 'dllm') has no path")
        # bfloat16, not float16: LLaDA was trained in it and float16 overflows its logits.
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        return MaskedDiffusionLM.from_pretrained(
            spec.path, device, dtype, trust_remote_code=spec.trust_remote_code
        )
    raise ValueError(f"model {spec.name!r}: unknown pipeline family {spec.family!r}")


def image_pipeline_class(family: str) -> type:
    """The composed pipeline of an image family; each imports torch and diffusers."""
    if family == "sd":
        from pipelines.sd import SDPipeline

        return SDPipeline
    if family == "sdxl":
        from pipelines.sdxl import SDXLPipeline

        return SDXLPipeline
    if family == "sd3":
        from pipelines.sd3 import SD3Pipeline

        return SD3Pipeline
    raise ValueError(f"unknown image family {family!r}")
