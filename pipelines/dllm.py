"""Text generation with a masked diffusion language model (LLaDA-style), behind genq's contract.

A masked diffusion LM does not write left to right. The answer starts as ``gen_length`` mask
tokens after the prompt and is split into blocks of ``block_length``, decoded one after the
other (semi-autoregressively). Within a block, each iteration runs the model over the whole
sequence (bidirectional attention), picks a token for every position and commits the most
confident picks among the block's still-masked positions. This follows LLaDA's reference
``generate`` (and SGLang's DLLM handler for LLaDA), with two ways to do fewer forwards:

- ``threshold``: confidence-threshold parallel decoding (Fast-dLLM; SGLang's
  ``LowConfidence``): each iteration commits every masked token of the block whose confidence
  reaches the threshold, and at least the most confident one; a block ends when it has no
  mask left, so easy text takes far fewer forwards than the fixed ``steps`` schedule.
- batching: requests that share their decoding parameters run as one batch, left-padded
  with an attention mask, so one forward serves them all.

:func:`generate` is the algorithm on tensors; :class:`MaskedDiffusionLM` adds tokenizer,
requests and callbacks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from pipelines.base import GenerationResult, OnBlock, OnStep, TextRequest
from pipelines.text_params import DECODING_PARAMS, validate

# LLaDA's mask token; its tokenizer does not declare it as ``mask_token``.
LLADA_MASK_TOKEN = "<|mdm_mask|>"

# After each finished block: (block from 1, number of blocks, generated ids so far, (B, n)).
BlockHook = Callable[[int, int, torch.Tensor], None]


def num_transfer_tokens(masked: torch.Tensor, iterations: int) -> torch.Tensor:
    """How many tokens each iteration commits: ``masked`` (B,) spread over ``iterations``.

    Each gets ``n // iterations`` and the first ``n % iterations`` one more, as LLaDA's
    ``get_num_transfer_tokens`` (10 over 4 -> [3, 3, 2, 2]). Returns (B, iterations).
    """
    masked = masked.to(torch.long)
    base = (masked // iterations).unsqueeze(1)
    remainder = (masked % iterations).unsqueeze(1)
    order = torch.arange(iterations, device=masked.device).unsqueeze(0)
    return base + (order < remainder).to(torch.long)


def add_gumbel_noise(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Gumbel-max sampling as LLaDA does it: argmax of the result samples at ``temperature``.

    float64 because low-precision Gumbel noise visibly hurts sample quality (LLaDA's note).
    At temperature 0 the logits pass through and the argmax is greedy.
    """
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, generator=generator, device=logits.device)
    return logits.exp() / (-torch.log(noise)) ** temperature


def _logits(
    model: Any,
    x: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_length: int,
    mask_id: int,
    cfg_scale: float,
) -> tuple[torch.Tensor, int]:
    """Logits (float32) for ``x`` and the number of model calls made (2 with guidance)."""
    cond = model(input_ids=x, attention_mask=attention_mask).logits.float()
    if cfg_scale <= 0:
        return cond, 1
    # The unconditional pass sees no prompt: every prompt position (left padding too) masked.
    unconditional = x.clone()
    unconditional[:, :prompt_length] = mask_id
    uncond = model(input_ids=unconditional, attention_mask=attention_mask).logits.float()
    return uncond + (cfg_scale + 1) * (cond - uncond), 2


@torch.no_grad()
def generate(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    mask_id: int,
    gen_length: int,
    block_length: int,
    steps: int,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    threshold: float | None = None,
    generator: torch.Generator | None = None,
    on_step: OnStep | None = None,
    on_block: BlockHook | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode ``gen_length`` tokens after each (left-padded) prompt row of ``input_ids``.

    ``model(input_ids=..., attention_mask=...)`` must return an object with ``.logits``
    (B, L, V). ``attention_mask`` (B, P) is 1 on prompt tokens and 0 on left padding; None
    means no padding. Returns the whole sequence (B, P + gen_length) and the number of model
    calls ("forwards"). The mask token is never predicted, so no mask is left at the end.

    ``on_step(done, total)`` is called with (0, total) first and after every iteration;
    with ``steps`` it counts iterations (total = steps), with ``threshold`` committed tokens
    over the batch (total = B * gen_length), since the number of iterations is not known in
    advance. An exception from it (JobCanceled) propagates. ``on_block`` sees each block
    once it is final.
    """
    num_blocks = validate(
        gen_length=gen_length,
        block_length=block_length,
        steps=steps,
        temperature=temperature,
        cfg_scale=cfg_scale,
        remasking=remasking,
        threshold=threshold,
        mask_id=mask_id,
    )
    batch, prompt_length = input_ids.shape
    device = input_ids.device
    x = torch.full((batch, prompt_length + gen_length), mask_id, dtype=torch.long, device=device)
    x[:, :prompt_length] = input_ids
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = torch.cat(
        [attention_mask, attention_mask.new_ones((batch, gen_length))], dim=1
    )

    steps_per_block = steps // num_blocks
    total = steps if threshold is None else batch * gen_length
    if on_step is not None:
        on_step(0, total)
    forwards = 0
    iterations_done = 0
    for block in range(num_blocks):
        start = prompt_length + block * block_length
        end = start + block_length
        if threshold is None:
            schedule = num_transfer_tokens((x[:, start:end] == mask_id).sum(dim=1), steps_per_block)
        # With a threshold each iteration commits at least one token per unfinished row, so
        # block_length iterations always finish the block.
        for i in range(steps_per_block if threshold is None else block_length):
            masked = x[:, start:end] == mask_id
            if threshold is not None and not masked.any():
                break
            logits, calls = _logits(model, x, attention_mask, prompt_length, mask_id, cfg_scale)
            forwards += calls
            # A committed mask would stay masked forever (and stall threshold decoding).
            logits[:, :, mask_id] = -torch.inf
            # Noise is drawn over the whole sequence, as LLaDA does, so the random stream
            # matches its loop draw for draw; only the current block is ever committed.
            noisy = add_gumbel_noise(logits, temperature, generator)
            chosen = noisy[:, start:end].argmax(dim=-1)
            if remasking == "low_confidence":
                probs = F.softmax(logits[:, start:end], dim=-1)
                confidence = probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
            else:
                random = torch.rand(x.shape, generator=generator, device=device)
                confidence = random[:, start:end]
            confidence = torch.where(masked, confidence, -torch.inf)

            # With a threshold: the most confident token of each row that has a mask left.
            counts = schedule[:, i] if threshold is None else masked.any(dim=1).to(torch.long)
            commit = torch.zeros_like(masked)
            for row in range(batch):
                top = torch.topk(confidence[row], k=int(counts[row])).indices
                commit[row, top] = True
            if threshold is not None:
                commit |= masked & (confidence >= threshold)
            x[:, start:end] = torch.where(commit, chosen, x[:, start:end])

            iterations_done += 1
            if on_step is not None:
                if threshold is None:
                    on_step(iterations_done, total)
                else:
                    on_step(int((x[:, prompt_length:] != mask_id).sum()), total)
        if on_block is not None:
            on_block(block + 1, num_blocks, x[:, prompt_length:end])
    return x, forwards


class MaskedDiffusionLM:
    """A loaded masked diffusion LM and its tokenizer; one instance serves many requests."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str,
        *,
        mask_id: int | None = None,
        use_chat_template: bool = True,
    ):
        self._model = model
        self._tokenizer = tokenizer
        self._device = device
        self.mask_id = self._resolve_mask_id(tokenizer, mask_id)
        pad_id = tokenizer.pad_token_id
        self.pad_id: int = pad_id if pad_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ValueError("pad_id: the tokenizer has neither a pad nor an end-of-text token")
        if self.pad_id == self.mask_id:
            raise ValueError(f"mask_id ({self.mask_id}) must differ from the pad token id")
        # Instruct checkpoints (LLaDA-8B-Instruct) expect their chat template around the prompt.
        self._chat = use_chat_template and bool(getattr(tokenizer, "chat_template", None))
        config = getattr(model, "config", None)
        self.max_positions: int | None = getattr(config, "max_position_embeddings", None) or (
            getattr(config, "max_sequence_length", None)
        )

    @staticmethod
    def _resolve_mask_id(tokenizer: Any, mask_id: int | None) -> int:
        if mask_id is not None:
            return mask_id
        if tokenizer.mask_token_id is not None:
            return int(tokenizer.mask_token_id)
        found = tokenizer.convert_tokens_to_ids(LLADA_MASK_TOKEN)
        if isinstance(found, int) and found != tokenizer.unk_token_id:
            return found
        raise ValueError("mask_id: the tokenizer has no mask token; pass mask_id")

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str,
        dtype: torch.dtype,
        *,
        trust_remote_code: bool = False,
        mask_id: int | None = None,
    ) -> MaskedDiffusionLM:
        """Load model and tokenizer from a local directory; never downloads.

        ``trust_remote_code`` runs modelling code shipped in the directory, which real LLaDA
        checkpoints need; they register only ``AutoModel``, tried when the masked-LM auto
        class does not know the config.
        """
        from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

        options = {"local_files_only": True, "trust_remote_code": trust_remote_code}
        tokenizer = AutoTokenizer.from_pretrained(path, **options)
        try:
            model = AutoModelForMaskedLM.from_pretrained(path, dtype=dtype, **options)
        except ValueError:
            if not trust_remote_code:
                raise
            model = AutoModel.from_pretrained(path, dtype=dtype, **options)
        # Cast again: older transformers releases ignore ``dtype`` (they call it torch_dtype).
        model = model.to(device=device, dtype=dtype).eval()
        return cls(model, tokenizer, device, mask_id=mask_id)

    def encode(self, prompt: str, messages: Any = None) -> list[int]:
        """Prompt token ids, inside the chat template when the checkpoint has one."""
        if messages and not self._chat:
            raise ValueError("messages: this model's tokenizer has no chat template")
        if self._chat:
            messages = list(messages or [{"role": "user", "content": prompt}])
            text = self._tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            # The template already holds the special tokens.
            return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(self._tokenizer(prompt)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def __call__(
        self, request: TextRequest, on_step: OnStep, on_block: OnBlock | None = None
    ) -> GenerationResult:
        """Generate text for one request; a JobCanceled from ``on_step`` propagates."""
        hook: BlockHook | None = None
        if on_block is not None:

            def hook(block: int, num_blocks: int, generated: torch.Tensor) -> None:
                on_block(block, num_blocks, self.decode(generated[0].tolist()))

        return self._run([request], on_step, hook)[0]

    def generate_batch(
        self, requests: list[TextRequest], on_step: OnStep | None = None
    ) -> list[GenerationResult]:
        """Generate for several requests in one batch: one forward serves them all.

        They must share gen_length, block_length, steps, temperature, cfg_scale, remasking
        and threshold. One generator seeded with the first request's seed draws the noise
        for the whole batch, so a request's sampled text (temperature > 0 or random
        remasking) depends on its batch; at temperature 0 with low_confidence it does not
        depend on seeds at all. Left padding shifts a short prompt's absolute positions: with
        absolute position embeddings (BERT) batched output can differ from unbatched, with
        rotary ones (LLaDA) only by float rounding. ``forwards`` in each result counts the
        batch's model calls, which all its requests shared.
        """
        if not requests:
            return []
        first = requests[0]
        for name in DECODING_PARAMS:
            if any(getattr(other, name) != getattr(first, name) for other in requests[1:]):
                raise ValueError(f"{name}: a batch needs one value for all its requests")
        return self._run(requests, on_step, None)

    def _run(
        self, requests: list[TextRequest], on_step: OnStep | None, hook: BlockHook | None
    ) -> list[GenerationResult]:
        first = requests[0]
        validate(
            gen_length=first.gen_length,
            block_length=first.block_length,
            steps=first.steps,
            temperature=first.temperature,
            cfg_scale=first.cfg_scale,
            remasking=first.remasking,
            threshold=first.threshold,
            mask_id=self.mask_id,
            pad_id=self.pad_id,
        )
        prompts = [self.encode(request.prompt, request.messages) for request in requests]
        longest = max(len(ids) for ids in prompts)
        if self.max_positions is not None and longest + first.gen_length > self.max_positions:
            raise ValueError(
                f"prompt: {longest} tokens + gen_length {first.gen_length} exceed the "
                f"model's {self.max_positions} positions"
            )
        # Left padding keeps every prompt right before its answer.
        input_ids = torch.tensor(
            [[self.pad_id] * (longest - len(ids)) + ids for ids in prompts], dtype=torch.long
        )
        attention_mask = torch.tensor(
            [[0] * (longest - len(ids)) + [1] * len(ids) for ids in prompts], dtype=torch.long
        )
        generator = torch.Generator(self._device).manual_seed(first.seed)

        started = time.perf_counter()
        x, forwards = generate(
            self._model,
            input_ids.to(self._device),
            attention_mask.to(self._device),
            mask_id=self.mask_id,
            gen_length=first.gen_length,
            block_length=first.block_length,
            steps=first.steps,
            temperature=first.temperature,
            cfg_scale=first.cfg_scale,
            remasking=first.remasking,
            threshold=first.threshold,
            generator=generator,
            on_step=on_step,
            on_block=hook,
        )
        seconds = time.perf_counter() - started
        results = []
        for row in x[:, longest:].tolist():
            results.append(
                GenerationResult(
                    images=[],
                    stages={"pipeline": seconds},
                    output={
                        "text": self.decode(row),
                        "token_ids": row,
                        "forwards": forwards,
                        "forwards_per_token": forwards / first.gen_length,
                    },
                )
            )
        return results
