"""Masked diffusion decoding: fixed schedule vs confidence threshold, and batched vs sequential.

Compares, in one run on CPU:
- plain decoding (one token per forward: steps = gen_length) against threshold decoding, on
  a scripted model whose confidences are known (so the effect is visible and reproducible)
  and on the tiny random-weight BERT from ``pipelines.tiny`` (whose confidences are low,
  so a 0.9 threshold rarely fires; 0.3 is shown too);
- a batch of 4 requests decoded together (one forward serves all 4) against the same
  4 requests one after the other.

Figures are forwards (model calls), forwards per generated token and generated tokens per
second (best of ``BENCH_REPEATS`` runs). Usage: ``python bench/dllm.py``. The last line is one
JSON object with the ratios.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipelines.base import TextRequest  # noqa: E402
from pipelines.dllm import MaskedDiffusionLM, generate  # noqa: E402
from pipelines.tiny import make_tiny_mlm  # noqa: E402

REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
GEN_LENGTH = 64
BLOCK_LENGTH = 8
THRESHOLD = 0.9
LOW_THRESHOLD = 0.3
PROMPTS = [
    "a red fox in the snow",
    "hello",
    "the old man and the sea went home at night",
    "write a story about a dog and a cat",
]


class ScriptedLM(torch.nn.Module):
    """Fixed predictions with confidences that depend on context, as a trained model's do.

    Three positions in four are sure (0.95); the fourth is unsure (0.6) until its left
    neighbour is decoded, then sure. So threshold decoding settles most of a block in one
    forward and the rest in the next. A small MLP body runs on every call so a forward
    costs time, as a network's does; its output is not used.
    """

    VOCAB = 512
    MASK = 1
    TOKEN = 10

    def __init__(self, gen_length: int, width: int = 256):
        super().__init__()
        self.gen_length = gen_length
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Embedding(self.VOCAB, width),
            torch.nn.Linear(width, 4 * width),
            torch.nn.GELU(),
            torch.nn.Linear(4 * width, width),
            torch.nn.Linear(width, self.VOCAB),
        )

    @staticmethod
    def _logit(confidence: torch.Tensor) -> torch.Tensor:
        # Against zero logits elsewhere (mask excluded), this logit has probability c.
        return torch.log(confidence * (ScriptedLM.VOCAB - 2) / (1 - confidence))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        self.body(input_ids)  # the cost of a forward
        batch, length = input_ids.shape
        start = length - self.gen_length
        generated = input_ids[:, start:]
        position = torch.arange(self.gen_length)
        left_known = torch.ones_like(generated, dtype=torch.bool)
        left_known[:, 1:] = generated[:, :-1] != self.MASK
        unsure = (position % 4 == 3) & ~left_known
        confidence = torch.where(unsure, torch.tensor(0.6), torch.tensor(0.95))
        logits = torch.zeros(batch, length, self.VOCAB)
        targets = (self.TOKEN + position).expand(batch, -1)
        logits[:, start:].scatter_(-1, targets.unsqueeze(-1), self._logit(confidence).unsqueeze(-1))
        return SimpleNamespace(logits=logits)


def best_time(run: Callable[[], int]) -> tuple[float, int]:
    """Best wall time over REPEATS runs (after one warm-up) and the forwards of one run."""
    forwards = run()
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), forwards


def row(name: str, tokens: int, forwards: int, seconds: float) -> dict[str, float | str]:
    return {
        "case": name,
        "tokens": tokens,
        "forwards": forwards,
        "forwards_per_token": forwards / tokens,
        "tokens_per_s": tokens / seconds,
    }


def scripted_rows() -> list[dict[str, float | str]]:
    model = ScriptedLM(GEN_LENGTH).eval()
    prompt = torch.arange(2, 18).unsqueeze(0)
    options = {
        "mask_id": ScriptedLM.MASK,
        "gen_length": GEN_LENGTH,
        "block_length": BLOCK_LENGTH,
        "steps": GEN_LENGTH,
    }

    def plain() -> int:
        return generate(model, prompt, **options)[1]

    def fast() -> int:
        return generate(model, prompt, threshold=THRESHOLD, **options)[1]

    rows = []
    for name, run in (("scripted plain", plain), (f"scripted threshold {THRESHOLD}", fast)):
        seconds, forwards = best_time(run)
        rows.append(row(name, GEN_LENGTH, forwards, seconds))
    return rows


def tiny_rows(lm: MaskedDiffusionLM, request: TextRequest) -> list[dict[str, float | str]]:
    rows = []
    for name, threshold in (
        ("tiny plain", None),
        (f"tiny threshold {THRESHOLD}", THRESHOLD),
        (f"tiny threshold {LOW_THRESHOLD}", LOW_THRESHOLD),
    ):
        one = replace(request, threshold=threshold)
        seconds, forwards = best_time(lambda one=one: lm(one, lambda s, t: None).output["forwards"])
        rows.append(row(name, GEN_LENGTH, forwards, seconds))
    return rows


def batch_rows(lm: MaskedDiffusionLM, request: TextRequest) -> list[dict[str, float | str]]:
    requests = [replace(request, prompt=p, seed=request.seed + i) for i, p in enumerate(PROMPTS)]

    def sequential() -> int:
        return sum(lm(r, lambda s, t: None).output["forwards"] for r in requests)

    def batched() -> int:
        return lm.generate_batch(requests)[0].output["forwards"]

    tokens = GEN_LENGTH * len(requests)
    rows = []
    cases = (
        (f"tiny {len(requests)} sequential", sequential),
        (f"tiny batch of {len(requests)}", batched),
    )
    for name, run in cases:
        seconds, forwards = best_time(run)
        rows.append(row(name, tokens, forwards, seconds))
    return rows


def print_table(rows: list[dict[str, float | str]]) -> None:
    print(f"{'case':<26}{'tokens':>8}{'forwards':>10}{'fwd/token':>11}{'tokens/s':>11}")
    for r in rows:
        print(
            f"{r['case']:<26}{r['tokens']:>8}{r['forwards']:>10}"
            f"{r['forwards_per_token']:>11.3f}{r['tokens_per_s']:>11.0f}"
        )


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep the output to the table
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        lm = MaskedDiffusionLM.from_pretrained(make_tiny_mlm(tmp), "cpu", torch.float32)
    request = TextRequest(
        prompt=PROMPTS[0],
        gen_length=GEN_LENGTH,
        block_length=BLOCK_LENGTH,
        steps=GEN_LENGTH,
        temperature=0.0,
        cfg_scale=0.0,
        remasking="low_confidence",
        seed=0,
    )
    scripted = scripted_rows()
    tiny = tiny_rows(lm, request)
    batch = batch_rows(lm, request)
    print(
        f"gen_length={GEN_LENGTH} block_length={BLOCK_LENGTH} steps={GEN_LENGTH} "
        f"torch threads={torch.get_num_threads()} best of {REPEATS}"
    )
    print_table(scripted + tiny + batch)

    def ratio(a: dict, b: dict, key: str) -> float:
        return round(float(a[key]) / float(b[key]), 3)

    figures = {
        "threshold_forwards_ratio": ratio(scripted[1], scripted[0], "forwards"),
        "threshold_speedup": ratio(scripted[1], scripted[0], "tokens_per_s"),
        "tiny_threshold_forwards_ratio": ratio(tiny[1], tiny[0], "forwards"),
        "tiny_threshold_speedup": ratio(tiny[1], tiny[0], "tokens_per_s"),
        "tiny_low_threshold_forwards_ratio": ratio(tiny[2], tiny[0], "forwards"),
        "tiny_low_threshold_speedup": ratio(tiny[2], tiny[0], "tokens_per_s"),
        "batch_forwards_ratio": ratio(batch[1], batch[0], "forwards"),
        "batch_speedup": ratio(batch[1], batch[0], "tokens_per_s"),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
