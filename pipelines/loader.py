"""Turn a registry entry into a ready pipeline on a device. Imported only by workers."""

from __future__ import annotations

from pipelines.base import Pipeline
from pipelines.registry import ModelSpec


def resolve_device(name: str) -> str:
    """``auto`` picks CUDA when present, else CPU; any other name passes through."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_pipeline(spec: ModelSpec, device: str) -> Pipeline:
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
    raise ValueError(f"model {spec.name!r}: unknown pipeline family {spec.family!r}")
