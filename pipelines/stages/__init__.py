"""Pipeline stages, each a step of the familiar diffusion script, composed per family."""

from pipelines.stages.base import PipelineStage, State
from pipelines.stages.conditioning import ConditioningStage, guidance_batch
from pipelines.stages.decoding import DecodingStage
from pipelines.stages.denoising import DenoisingStage
from pipelines.stages.latents import ImageEncodingStage, LatentPreparationStage
from pipelines.stages.text import TextEncodingStage, token_ids
from pipelines.stages.timesteps import TimestepPreparationStage
from pipelines.stages.validation import InputValidationStage

__all__ = [
    "ConditioningStage",
    "DecodingStage",
    "DenoisingStage",
    "ImageEncodingStage",
    "InputValidationStage",
    "LatentPreparationStage",
    "PipelineStage",
    "State",
    "TextEncodingStage",
    "TimestepPreparationStage",
    "guidance_batch",
    "token_ids",
]
