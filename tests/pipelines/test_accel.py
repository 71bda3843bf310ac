"""Accelerations switched per model in the registry: caches, compile, dtype, attention backend."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.base import ImageRequest
from pipelines.loader import load_pipeline
from pipelines.registry import Accel, ModelSpec, RegistryError, parse_registry
from pipelines.sd import SDPipeline
from pipelines.sd3 import SD3Pipeline
from pipelines.sdxl import SDXLPipeline
from pipelines.tiny import make_tiny_sd3

REQUEST = ImageRequest(
    prompt="a red fox in the snow",
    width=64,
    height=64,
    num_inference_steps=8,
    guidance_scale=5.0,
    num_images=1,
    seed=7,
)


def ignore_steps(step: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def deep_sd3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six blocks: enough for the first-block cache to have blocks to skip."""
    return make_tiny_sd3(tmp_path_factory.mktemp("deep-sd3"), num_layers=6)


class Evaluations:
    """Counts what really runs inside a transformer's blocks: a cache hook that skips a block
    or predicts an attention output never calls the layers inside it."""

    def __init__(self, transformer: torch.nn.Module):
        self.blocks = self.attentions = 0
        for block in transformer.transformer_blocks:
            block.norm1.register_forward_hook(lambda *_: self._count("blocks"))
            block.attn.to_q.register_forward_hook(lambda *_: self._count("attentions"))

    def _count(self, what: str) -> None:
        setattr(self, what, getattr(self, what) + 1)

    def run(self, pipeline: SD3Pipeline, request: ImageRequest = REQUEST) -> np.ndarray:
        self.blocks = self.attentions = 0
        return np.stack(pipeline(request, ignore_steps, output_type="np").images)


def parse_accel(family: str, accel: dict) -> Accel:
    registry = parse_registry({"models": {"m": {"family": family, "path": "/m", "accel": accel}}})
    return registry.get("m").accel


def test_registry_parses_the_accel_table() -> None:
    accel = parse_accel(
        "sd3",
        {
            "cache": "first_block_cache",
            "cache_threshold": 0.1,
            "compile": True,
            "dtype": "bfloat16",
            "attention_backend": "native",
        },
    )
    assert accel == Accel(
        cache="first_block_cache",
        cache_threshold=0.1,
        compile=True,
        dtype="bfloat16",
        attention_backend="native",
    )
    plain = parse_registry({"models": {"m": {"family": "sd", "path": "/m"}}}).get("m")
    assert plain.accel == Accel()


@pytest.mark.parametrize(
    ("family", "accel", "message"),
    [
        ("sd3", {"cache": "teacache"}, "cache must be one of"),
        ("sd", {"cache": "first_block_cache"}, "diffusion-transformer family"),
        ("sdxl", {"cache": "taylorseer"}, "diffusion-transformer family"),
        ("sd3", {"dtype": "float64"}, "dtype must be one of"),
        ("sd3", {"compile": "yes"}, "compile must be true or false"),
        ("sd3", {"cache_threshold": 0}, "cache_threshold"),
        ("sd3", {"turbo": True}, "unknown keys"),
        ("dllm", {"compile": True}, "image families"),
    ],
)
def test_registry_rejects_bad_accel(family: str, accel: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_accel(family, accel)


def test_registry_gives_sd3_its_size_multiple() -> None:
    registry = parse_registry(
        {
            "models": {
                "sd3": {"family": "sd3", "path": "/m"},
                "sd": {"family": "sd", "path": "/m"},
                "wide": {"family": "sd3", "path": "/m", "limits": {"size_multiple": 32}},
            }
        }
    )
    assert registry.get("sd3").limits.size_multiple == 16
    assert registry.get("sd3").limits.min_width == 16
    assert registry.get("sd").limits.size_multiple == 8
    assert registry.get("wide").limits.size_multiple == 32
    with pytest.raises(RegistryError, match="multiple of 16"):
        parse_registry(
            {"models": {"m": {"family": "sd3", "path": "/m", "limits": {"size_multiple": 8}}}}
        )


def test_first_block_cache_skips_blocks_and_resets_per_request(deep_sd3: Path) -> None:
    plain = SD3Pipeline.from_pretrained(deep_sd3, "cpu")
    cached = SD3Pipeline.from_pretrained(
        deep_sd3, "cpu", Accel(cache="first_block_cache", cache_threshold=0.5)
    )
    plain_counts, cached_counts = Evaluations(plain.denoiser), Evaluations(cached.denoiser)
    reference = plain_counts.run(plain)
    first = cached_counts.run(cached)
    assert plain_counts.blocks == 8 * 6
    assert cached_counts.blocks < plain_counts.blocks
    # The cache starts empty for each request, so the same request gives the same image.
    assert np.array_equal(cached_counts.run(cached), first)
    assert np.isfinite(first).all() and first.shape == reference.shape


def test_taylorseer_predicts_attention_between_full_steps(deep_sd3: Path) -> None:
    accel = Accel(cache="taylorseer", cache_interval=2, cache_warmup_steps=2)
    cached = SD3Pipeline.from_pretrained(deep_sd3, "cpu", accel)
    counts = Evaluations(cached.denoiser)
    first = counts.run(cached)
    # Steps 0-1 warm up; then steps 3, 5, 7 compute and 2, 4, 6 are predicted.
    assert counts.attentions == 5 * 6
    assert counts.blocks == 8 * 6
    assert np.array_equal(counts.run(cached), first)
    assert np.isfinite(first).all()


def test_loader_applies_the_registry_accel(tiny_paths: dict[str, Path]) -> None:
    spec = ModelSpec(
        name="fast",
        kind="image",
        family="sd3",
        path=str(tiny_paths["sd3"]),
        accel=Accel(cache="first_block_cache"),
    )
    pipeline = load_pipeline(spec, "cpu")
    denoising = next(s for s in pipeline.text_to_image if s.name == "denoising")
    assert denoising.cached
    assert pipeline.check_health() is not None


@pytest.mark.parametrize("family", ["sd", "sd3"])
def test_compile_flag_compiles_the_denoiser(
    tiny_paths: dict[str, Path], family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[object] = []

    def spy(model, *args, **kwargs):
        compiled.append(model)
        return model  # not compiling: too slow for a unit test

    monkeypatch.setattr(torch, "compile", spy)
    cls = {"sd": SDPipeline, "sd3": SD3Pipeline}[family]
    pipeline = cls.from_pretrained(tiny_paths[family], "cpu", Accel(compile=True))
    # nn.Module.compile compiles the module's call in place, keeping the module itself.
    assert [getattr(target, "__self__", None) for target in compiled] == [pipeline.denoiser]
    monkeypatch.undo()
    assert cls.from_pretrained(tiny_paths[family], "cpu").denoiser._compiled_call_impl is None


def test_attention_backend_is_set_on_the_denoiser(
    tiny_paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    backends: list[str] = []
    monkeypatch.setattr(
        "diffusers.models.modeling_utils.ModelMixin.set_attention_backend",
        lambda self, backend: backends.append((type(self).__name__, backend)),
    )
    SD3Pipeline.from_pretrained(tiny_paths["sd3"], "cpu", Accel(attention_backend="native"))
    assert backends == [("SD3Transformer2DModel", "native")]


def test_dtype_from_the_registry(tiny_paths: dict[str, Path]) -> None:
    pipeline = SD3Pipeline.from_pretrained(tiny_paths["sd3"], "cpu", Accel(dtype="bfloat16"))
    assert pipeline.denoiser.dtype == torch.bfloat16
    result = pipeline(replace(REQUEST, num_inference_steps=2), ignore_steps, output_type="np")
    assert np.isfinite(result.images[0]).all()


def test_sdxl_keeps_its_vae_in_float32_under_float16(tiny_paths: dict[str, Path]) -> None:
    pipeline = SDXLPipeline.from_pretrained(tiny_paths["sdxl"], "cpu", Accel(dtype="float16"))
    assert pipeline.denoiser.dtype == torch.float16
    assert pipeline.components["vae"].dtype == torch.float32
