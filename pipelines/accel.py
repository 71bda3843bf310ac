"""Accelerations a registry entry switches on (``[models.X.accel]``, see ``registry.Accel``).

Caches use diffusers' own hooks (``diffusers.hooks``): First Block Cache and TaylorSeer. In
diffusers 0.42 ``SD3Transformer2DModel`` lacks ``CacheMixin`` (``enable_cache``), so the hooks
are applied with diffusers' ``apply_*`` functions, and the per-request cache context is set with
``CacheMixin.cache_context``, which needs nothing of the mixin but the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from pipelines.registry import Accel

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(accel: Accel, device: str) -> torch.dtype:
    """The registry's dtype; by default half precision on CUDA, where it halves time and
    memory, and float32 elsewhere, as CPUs lack fast float16 kernels."""
    if accel.dtype is not None:
        return TORCH_DTYPES[accel.dtype]
    return torch.float16 if device.startswith("cuda") else torch.float32


def accelerate(denoiser: torch.nn.Module, accel: Accel) -> None:
    """Apply ``accel`` to a loaded denoiser, in place."""
    if accel.attention_backend is not None:
        # Only attention processors that dispatch through diffusers honour it; SD's and SD3's
        # (AttnProcessor2_0, JointAttnProcessor2_0) call torch's SDPA directly in 0.42.
        denoiser.set_attention_backend(accel.attention_backend)
    if accel.cache == "first_block_cache":
        enable_first_block_cache(denoiser, accel.cache_threshold)
    elif accel.cache == "taylorseer":
        enable_taylorseer_cache(denoiser, accel)
    if accel.compile:
        # In place (nn.Module.compile), so the module keeps its config, dtype and hooks.
        denoiser.compile()


def enable_first_block_cache(transformer: torch.nn.Module, threshold: float) -> None:
    """Skip the blocks after the first while its output changes by less than ``threshold``.

    diffusers' tail hook takes the difference of both streams of the last block, but SD3's last
    block returns no text stream (``context_pre_only``) and the hook fails on it; so the blocks
    before it are cached and it always runs.
    """
    from diffusers.hooks import FirstBlockCacheConfig, HookRegistry, apply_first_block_cache

    blocks = list(transformer.transformer_blocks)
    if getattr(blocks[-1], "context_pre_only", False):
        blocks = blocks[:-1]
    if len(blocks) < 2:
        raise ValueError("first_block_cache needs at least two cacheable transformer blocks")
    cached = torch.nn.Module()
    cached.transformer_blocks = torch.nn.ModuleList(blocks)
    apply_first_block_cache(cached, FirstBlockCacheConfig(threshold=threshold))
    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()


def enable_taylorseer_cache(transformer: torch.nn.Module, accel: Accel) -> None:
    """Compute attention fully every ``cache_interval`` steps (after ``cache_warmup_steps``)
    and predict it by a first-order Taylor expansion in between."""
    from diffusers.hooks import HookRegistry, TaylorSeerCacheConfig, apply_taylorseer_cache

    config = TaylorSeerCacheConfig(
        cache_interval=accel.cache_interval,
        disable_cache_before_step=accel.cache_warmup_steps,
        # diffusers keeps the factors in bfloat16 to save memory; float32 models keep theirs.
        taylor_factors_dtype=torch.float32
        if transformer.dtype == torch.float32
        else torch.bfloat16,
    )
    apply_taylorseer_cache(transformer, config)
    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()


@contextmanager
def denoising_session(denoiser: torch.nn.Module, cached: bool) -> Iterator[None]:
    """One request's denoising loop: cache state starts empty (a request must never reuse
    another's outputs) and diffusers' stateful hooks find their context."""
    if not cached:
        yield
        return
    from diffusers.hooks import HookRegistry
    from diffusers.models.cache_utils import CacheMixin

    HookRegistry.check_if_exists_or_initialize(denoiser).reset_stateful_hooks()
    # Conditional and unconditional halves go through in one batch, hence one context.
    with CacheMixin.cache_context(denoiser, "cond"):
        yield
