"""Transformer caches on the SD3 family: First Block Cache and TaylorSeer against a plain run.

Builds a random-weight SD3 checkpoint bigger than the test one (12 MMDiT blocks, 128 wide) and
generates the same 256x256 image, 20 steps with guidance, three ways in one run: plain, with
``first_block_cache`` and with ``taylorseer`` (the registry's ``[models.X.accel]`` switches,
applied by ``pipelines.accel`` through diffusers' hooks). For each it counts

- denoiser forwards (transformer calls: caches work inside them, so these stay equal),
- block evaluations (a block's layers really running: First Block Cache skips whole blocks),
- attention evaluations (an attention's projections really running: TaylorSeer predicts
  attention outputs between full steps),

times the denoising (best of ``BENCH_REPEATS`` runs after a warm-up) and measures how far the
image moves from the plain one. Random weights change far more from step to step than trained
ones (the first block's residual moves 35-60% per step here), so First Block Cache needs a
threshold (0.5) far above what a trained model would use (0.05-0.2) to skip anything; the
counts and times show the mechanism, not a quality trade-off.

Usage: ``python bench/accel.py``. The last line is one JSON object with the ratios.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.base import ImageRequest  # noqa: E402
from pipelines.registry import Accel  # noqa: E402
from pipelines.sd3 import SD3Pipeline  # noqa: E402
from pipelines.tiny import make_tiny_sd3  # noqa: E402

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
REQUEST = ImageRequest(
    prompt="a red fox in the snow",
    width=256,
    height=256,
    num_inference_steps=20,
    guidance_scale=5.0,
    num_images=1,
    seed=7,
)
CASES = {
    "plain": Accel(),
    "first_block_cache": Accel(cache="first_block_cache", cache_threshold=0.5),
    "taylorseer": Accel(cache="taylorseer", cache_interval=3, cache_warmup_steps=3),
}


class Counter:
    """Forward hooks on what runs only when it is really computed."""

    def __init__(self, transformer: torch.nn.Module):
        self.counts = {"forwards": 0, "blocks": 0, "attentions": 0}
        transformer.register_forward_hook(lambda *_: self._add("forwards"))
        for block in transformer.transformer_blocks:
            # A skipped block returns without calling its layers; a predicted attention
            # returns without calling its projections.
            block.norm1.register_forward_hook(lambda *_: self._add("blocks"))
            block.attn.to_q.register_forward_hook(lambda *_: self._add("attentions"))

    def _add(self, what: str) -> None:
        self.counts[what] += 1

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.counts, 0)


def run_case(path: Path, accel: Accel) -> dict[str, float]:
    pipeline = SD3Pipeline.from_pretrained(path, "cpu", accel)
    counter = Counter(pipeline.denoiser)
    warm_up = replace(REQUEST, num_inference_steps=2)
    pipeline(warm_up, lambda step, total: None)
    seconds = []
    for _ in range(REPEATS):
        counter.reset()
        result = pipeline(REQUEST, lambda step, total: None, output_type="np")
        seconds.append(result.stages["denoising"])
    return {**counter.counts, "seconds": min(seconds), "image": result.images[0]}


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_tiny_sd3(
            Path(tmp) / "sd3", num_layers=12, attention_head_dim=32, num_attention_heads=4
        )
        figures = {name: run_case(path, accel) for name, accel in CASES.items()}

    plain = figures["plain"]
    steps = REQUEST.num_inference_steps
    print(
        f"SD3 (random weights), 12 blocks x 128 wide, {REQUEST.width}x{REQUEST.height}, "
        f"{steps} steps, guidance {REQUEST.guidance_scale}, {torch.get_num_threads()} threads"
    )
    header = f"{'case':<20}{'forwards':>9}{'blocks':>8}{'attns':>7}{'denoise s':>11}"
    print(header + f"{'speedup':>9}{'max |diff|':>12}")
    summary: dict[str, float] = {"steps": steps, "threads": torch.get_num_threads()}
    for name, case in figures.items():
        speedup = plain["seconds"] / case["seconds"]
        difference = float(np.abs(case["image"] - plain["image"]).max())
        print(
            f"{name:<20}{case['forwards']:>9}{case['blocks']:>8}{case['attentions']:>7}"
            f"{case['seconds']:>11.2f}{speedup:>9.2f}{difference:>12.3f}"
        )
        if name == "plain":
            summary["plain_seconds"] = round(case["seconds"], 3)
            continue
        summary[f"{name}_forwards_ratio"] = round(case["forwards"] / plain["forwards"], 3)
        summary[f"{name}_block_evals_ratio"] = round(case["blocks"] / plain["blocks"], 3)
        summary[f"{name}_attention_evals_ratio"] = round(
            case["attentions"] / plain["attentions"], 3
        )
        summary[f"{name}_speedup"] = round(speedup, 3)
        summary[f"{name}_max_abs_diff"] = round(difference, 4)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
