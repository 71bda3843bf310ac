"""Stable Diffusion 3: an MMDiT transformer denoising by flow matching, conditioned on two CLIP
encoders and a T5 (zeros when the checkpoint leaves T5 out)."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from diffusers import StableDiffusion3Pipeline
from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import calculate_shift

from pipelines.composed import ComposedPipeline
from pipelines.schedulers import FLOW_SCHEDULERS, SchedulerFactory
from pipelines.stages import (
    ConditioningStage,
    DecodingStage,
    DenoisingStage,
    ImageEncodingStage,
    InputValidationStage,
    LatentPreparationStage,
    State,
    TextEncodingStage,
    TimestepPreparationStage,
    guidance_batch,
    token_ids,
)

# T5 tokens SD3 attends to (diffusers' default max_sequence_length).
T5_TOKENS = 256


def encode_prompt(
    clip_tokenizers, clip_encoders, t5_tokenizer, t5_encoder, joint_dim: int, text: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CLIPs' penultimate hidden states side by side, zero-padded to T5's width, then T5's
    tokens after them; the pooled embedding is both CLIPs' projections side by side."""
    hidden, pooled = [], []
    for tokenizer, encoder in zip(clip_tokenizers, clip_encoders, strict=True):
        out = encoder(token_ids(tokenizer, text, encoder.device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled.append(out[0])
    clip = torch.cat(hidden, dim=-1)
    if t5_encoder is None:
        t5 = torch.zeros(
            (1, T5_TOKENS, joint_dim), device=clip.device, dtype=clip_encoders[0].dtype
        )
    else:
        ids = token_ids(t5_tokenizer, text, t5_encoder.device, max_length=T5_TOKENS)
        t5 = t5_encoder(ids)[0]
    clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
    return torch.cat([clip, t5], dim=-2), torch.cat(pooled, dim=-1)


def condition(state: State) -> dict[str, Any]:
    return {
        "encoder_hidden_states": guidance_batch(
            state, state.negative_prompt_embeds, state.prompt_embeds
        ),
        "pooled_projections": guidance_batch(
            state, state.negative_pooled_prompt_embeds, state.pooled_prompt_embeds
        ),
    }


def predict_velocity(transformer, latents: torch.Tensor, t: torch.Tensor, conditioning):
    timestep = t.expand(latents.shape[0])
    return transformer(hidden_states=latents, timestep=timestep, **conditioning, return_dict=False)[
        0
    ]


def timestep_args(scheduler_config, vae_scale_factor: int, patch_size: int, state: State):
    """Schedulers with dynamic shifting shift the schedule by the image's token count."""
    if not scheduler_config.get("use_dynamic_shifting"):
        return {}
    request = state.request
    tokens = (request.height // vae_scale_factor // patch_size) * (
        request.width // vae_scale_factor // patch_size
    )
    mu = calculate_shift(
        tokens,
        scheduler_config.get("base_image_seq_len", 256),
        scheduler_config.get("max_image_seq_len", 4096),
        scheduler_config.get("base_shift", 0.5),
        scheduler_config.get("max_shift", 1.16),
    )
    return {"mu": mu}


def scale_noise(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor):
    """Flow matching's forward process: a straight line from the image to the noise."""
    return scheduler.scale_noise(latents, timesteps, noise)


def to_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    return (latents - vae_config.shift_factor) * vae_config.scaling_factor


def from_latents(vae_config, latents: torch.Tensor) -> torch.Tensor:
    return latents / vae_config.scaling_factor + vae_config.shift_factor


class SD3Pipeline(ComposedPipeline):
    family = "sd3"
    diffusers_class = StableDiffusion3Pipeline
    required_components = (
        "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "transformer",
        "scheduler",
    )  # fmt: skip
    unused_components = ("image_encoder", "feature_extractor")
    denoiser_name = "transformer"

    @property
    def size_multiple(self) -> int:
        """Latents are cut into patches, so sizes are multiples of VAE factor x patch size."""
        return self.vae_scale_factor * self.components["transformer"].config.patch_size

    def build(self) -> None:
        c, device = self.components, self.device
        transformer = c["transformer"]
        check = InputValidationStage(self.family, self.size_multiple, self.min_size)
        schedulers = SchedulerFactory(c["scheduler"], FLOW_SCHEDULERS)
        shift = partial(
            timestep_args,
            c["scheduler"].config,
            self.vae_scale_factor,
            transformer.config.patch_size,
        )
        schedule = TimestepPreparationStage(self.family, schedulers, device, shift)
        encode = TextEncodingStage(
            partial(
                encode_prompt,
                (c["tokenizer"], c["tokenizer_2"]),
                (c["text_encoder"], c["text_encoder_2"]),
                c.get("tokenizer_3"),
                c.get("text_encoder_3"),
                transformer.config.joint_attention_dim,
            )
        )
        conditioning = ConditioningStage(condition)
        denoise = DenoisingStage(transformer, predict_velocity, cached=self.accel.cache is not None)
        decode = DecodingStage(c["vae"], self.image_processor, from_latents)
        from_noise = LatentPreparationStage(
            transformer.config.in_channels, self.vae_scale_factor, device
        )
        from_image = ImageEncodingStage(
            c["vae"], self.image_processor, to_latents, device, noise=scale_noise
        )

        self.text_to_image = [check, schedule, encode, conditioning, from_noise, denoise, decode]
        self.image_to_image = [check, schedule, encode, conditioning, from_image, denoise, decode]
