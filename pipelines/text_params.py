"""Decoding parameters of masked diffusion LM jobs, checked without torch.

The API checks them before queueing and the pipeline again before decoding, with the same
function, so a request the API accepts is one the worker can run.
"""

from __future__ import annotations

REMASKING = ("low_confidence", "random")
# The decoding parameters of a text job; requests decoded together in one batch must agree
# on all of them (prompt and seed may differ).
DECODING_PARAMS = (
    "gen_length",
    "block_length",
    "steps",
    "temperature",
    "cfg_scale",
    "remasking",
    "threshold",
)


def validate(
    *,
    gen_length: int,
    block_length: int,
    steps: int,
    temperature: float,
    cfg_scale: float,
    remasking: str,
    threshold: float | None,
    mask_id: int | None = None,
    pad_id: int | None = None,
) -> int:
    """Check decoding parameters; returns the number of blocks.

    Each error starts with the parameter's name, so the API can map it to a request field.
    """
    if gen_length < 1:
        raise ValueError(f"gen_length must be at least 1, not {gen_length}")
    if block_length < 1:
        raise ValueError(f"block_length must be at least 1, not {block_length}")
    if gen_length % block_length:
        raise ValueError(
            f"gen_length ({gen_length}) must be a multiple of block_length ({block_length})"
        )
    num_blocks = gen_length // block_length
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    if steps % num_blocks:
        raise ValueError(
            f"steps ({steps}) must be a multiple of the number of blocks ({num_blocks} = "
            f"gen_length / block_length)"
        )
    if not temperature >= 0:  # also rejects NaN
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if not cfg_scale >= 0:
        raise ValueError(f"cfg_scale must be >= 0, not {cfg_scale}")
    if remasking not in REMASKING:
        raise ValueError(f"remasking must be one of {REMASKING}, not {remasking!r}")
    if threshold is not None:
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        if remasking != "low_confidence":
            # A threshold on uniform noise would commit random tokens, not confident ones.
            raise ValueError("threshold needs remasking 'low_confidence'")
    if mask_id is not None and pad_id is not None and pad_id == mask_id:
        raise ValueError(f"mask_id ({mask_id}) must differ from the pad token id")
    return num_blocks
