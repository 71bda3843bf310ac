"""Turn a registry entry into a ready pipeline on a device. Imported only by workers."""

from __future__ import annotations

from pipelines.base import Pipeline, TextPipeline
from pipelines.registry import ModelSpec


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
    if spec.family == "sd":
        import torch

        from pipelines.image import StableDiffusionTextToImage

        if not spec.path:
            raise ValueError(f"model {spec.name!r} (family 'sd') has no path")
        # Half precision halves memory and time on CUDA; CPUs lack fast float16 kernels.
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        return StableDiffusionTextToImage.from_pretrained(spec.path, device, dtype)
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
