"""Text encoding: prompt and negative prompt to embeddings, with the family's encoder function.

``encode(text) -> (embeddings, pooled or None)`` is the family's own (one CLIP for SD, two for
SDXL, two CLIPs and a T5 for SD3); this stage only decides what is encoded and repeats it for
each image.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipelines.stages.base import PipelineStage, State

Encode = Callable[[str], tuple[torch.Tensor, torch.Tensor | None]]


def token_ids(tokenizer, text: str, device: torch.device, max_length: int | None = None):
    """Token ids padded (and truncated) to the tokenizer's length, as the encoders were trained."""
    return tokenizer(
        text,
        padding="max_length",
        max_length=max_length or tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids.to(device)


def _per_image(tensor: torch.Tensor | None, n: int) -> torch.Tensor | None:
    return None if tensor is None else tensor.repeat_interleave(n, dim=0)


class TextEncodingStage(PipelineStage):
    name = "text_encoding"

    def __init__(self, encode: Encode, zeros_for_empty_negative: bool = False):
        self.encode = encode
        # SDXL was trained with zeros, not the empty prompt's embeddings, as "no negative".
        self.zeros_for_empty_negative = zeros_for_empty_negative

    def forward(self, state: State) -> State:
        request, n = state.request, state.request.num_images
        embeds, pooled = self.encode(request.prompt)
        state.prompt_embeds, state.pooled_prompt_embeds = (
            _per_image(embeds, n),
            _per_image(pooled, n),
        )
        if not state.guided:
            return state
        if request.negative_prompt is None and self.zeros_for_empty_negative:
            negative = torch.zeros_like(embeds)
            negative_pooled = None if pooled is None else torch.zeros_like(pooled)
        else:
            negative, negative_pooled = self.encode(request.negative_prompt or "")
        state.negative_prompt_embeds = _per_image(negative, n)
        state.negative_pooled_prompt_embeds = _per_image(negative_pooled, n)
        return state
