"""Masked diffusion text generation against a tiny random-weight BERT built on the fly.

Fidelity: genq's token ids must equal those of a plain reference loop written here in the
style of LLaDA's ``generate.py`` (independently of ``pipelines.dllm``), for the same model,
seed and parameters. A scripted model with known confidences pins down threshold decoding.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForMaskedLM, AutoTokenizer

from pipelines.base import JobCanceled, TextRequest
from pipelines.dllm import MaskedDiffusionLM, generate, num_transfer_tokens
from pipelines.loader import load_pipeline
from pipelines.registry import Defaults, ModelSpec, RegistryError, parse_registry
from pipelines.tiny import make_tiny_mlm

REQUEST = TextRequest(
    prompt="a red fox in the snow",
    gen_length=32,
    block_length=8,
    steps=32,
    temperature=0.0,
    cfg_scale=0.0,
    remasking="low_confidence",
    seed=1234,
)
BATCH_PROMPTS = ["a red fox in the snow", "hello", "the old man and the sea went home at night"]


def ignore_steps(step: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm"))


@pytest.fixture(scope="module")
def lm(tiny_path: Path) -> MaskedDiffusionLM:
    return MaskedDiffusionLM.from_pretrained(tiny_path, "cpu", torch.float32)


@pytest.fixture(scope="module")
def reference_model(tiny_path: Path):
    return AutoModelForMaskedLM.from_pretrained(tiny_path, local_files_only=True).eval()


@pytest.fixture(scope="module")
def tokenizer(tiny_path: Path):
    return AutoTokenizer.from_pretrained(tiny_path, local_files_only=True)


# --- The reference: LLaDA's generate loop, kept plain ------------------------------------------


def ref_gumbel(logits: torch.Tensor, temperature: float, generator: torch.Generator):
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, generator=generator)
    return logits.exp() / (-torch.log(noise)) ** temperature


def ref_num_transfer(block_mask_index: torch.Tensor, steps: int) -> torch.Tensor:
    mask_num = block_mask_index.sum(dim=1, keepdim=True)
    base = mask_num // steps
    remainder = mask_num % steps
    counts = torch.zeros(mask_num.size(0), steps, dtype=torch.int64) + base
    for i in range(mask_num.size(0)):
        counts[i, : remainder[i]] += 1
    return counts


@torch.no_grad()
def reference_generate(
    model,
    prompt: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    steps: int,
    gen_length: int,
    block_length: int,
    temperature: float,
    cfg_scale: float,
    remasking: str,
    mask_id: int,
    generator: torch.Generator,
    threshold: float | None = None,
) -> tuple[torch.Tensor, int]:
    """LLaDA's loop, plus genq's two rules: only the current block is committed, and the mask
    token is never predicted. With ``threshold``, Fast-dLLM's rule: top-1 plus every token at
    or above the threshold, until the block has no mask."""
    batch, prompt_len = prompt.shape
    x = torch.full((batch, prompt_len + gen_length), mask_id, dtype=torch.long)
    x[:, :prompt_len] = prompt.clone()
    attention_mask = torch.cat([attention_mask, torch.ones(batch, gen_length).long()], dim=-1)
    prompt_index = torch.zeros_like(x, dtype=torch.bool)
    prompt_index[:, :prompt_len] = True
    num_blocks = gen_length // block_length
    steps = steps // num_blocks
    calls = 0

    for num_block in range(num_blocks):
        lo = prompt_len + num_block * block_length
        hi = lo + block_length
        counts = ref_num_transfer(x[:, lo:hi] == mask_id, steps)
        i = 0
        while True:
            if threshold is None and i == steps:
                break
            if threshold is not None and not (x[:, lo:hi] == mask_id).any():
                break
            mask_index = x == mask_id
            if cfg_scale > 0.0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                # LLaDA runs both in one doubled batch; genq makes two calls (two forwards).
                both = model(
                    torch.cat([x, un_x]), attention_mask=torch.cat([attention_mask] * 2)
                ).logits
                logits, un_logits = torch.chunk(both, 2, dim=0)
                calls += 2
                logits = un_logits + (cfg_scale + 1) * (logits - un_logits)
            else:
                logits = model(x, attention_mask=attention_mask).logits
                calls += 1
            logits[:, :, mask_id] = -torch.inf

            x0 = torch.argmax(ref_gumbel(logits, temperature, generator), dim=-1)
            if remasking == "low_confidence":
                p = F.softmax(logits, dim=-1)
                x0_p = torch.gather(p, dim=-1, index=x0.unsqueeze(-1)).squeeze(-1)
            else:
                x0_p = torch.rand((x0.shape[0], x0.shape[1]), generator=generator)
            x0_p[:, :lo] = -torch.inf
            x0_p[:, hi:] = -torch.inf

            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, x0_p, -torch.inf)
            transfer = torch.zeros_like(x0, dtype=torch.bool)
            for j in range(batch):
                rest = int((x[j, lo:hi] == mask_id).any())
                k = int(counts[j, i]) if threshold is None else rest
                _, select = torch.topk(confidence[j], k=k)
                transfer[j, select] = True
                if threshold is not None:
                    transfer[j] |= confidence[j] >= threshold
            x[transfer] = x0[transfer]
            i += 1
    return x, calls


def left_padded(tokenizer, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, padding=True, return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def run_reference(model, tokenizer, requests: list[TextRequest]) -> tuple[list[list[int]], int]:
    first = requests[0]
    input_ids, attention_mask = left_padded(tokenizer, [r.prompt for r in requests])
    x, calls = reference_generate(
        model,
        input_ids,
        attention_mask,
        steps=first.steps,
        gen_length=first.gen_length,
        block_length=first.block_length,
        temperature=first.temperature,
        cfg_scale=first.cfg_scale,
        remasking=first.remasking,
        mask_id=tokenizer.mask_token_id,
        generator=torch.Generator("cpu").manual_seed(first.seed),
        threshold=first.threshold,
    )
    return x[:, input_ids.shape[1] :].tolist(), calls


# --- Fidelity ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize("cfg_scale", [0.0, 1.5])
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_matches_reference(
    lm: MaskedDiffusionLM,
    reference_model,
    tokenizer,
    batch_size: int,
    temperature: float,
    cfg_scale: float,
    remasking: str,
) -> None:
    request = replace(REQUEST, temperature=temperature, cfg_scale=cfg_scale, remasking=remasking)
    requests = [replace(request, prompt=p) for p in BATCH_PROMPTS[:batch_size]]
    single = batch_size == 1
    results = [lm(requests[0], ignore_steps)] if single else lm.generate_batch(requests)
    expected, calls = run_reference(reference_model, tokenizer, requests)

    assert [r.output["token_ids"] for r in results] == expected
    assert all(r.output["forwards"] == calls == 32 * (2 if cfg_scale else 1) for r in results)
    assert all(r.output["forwards_per_token"] == calls / 32 for r in results)
    assert all(r.images == [] for r in results)
    assert results[0].output["text"] == tokenizer.decode(expected[0], skip_special_tokens=True)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_threshold_matches_reference(
    lm: MaskedDiffusionLM, reference_model, tokenizer, batch_size: int, temperature: float
) -> None:
    request = replace(REQUEST, threshold=0.3, temperature=temperature)
    requests = [replace(request, prompt=p) for p in BATCH_PROMPTS[:batch_size]]
    results = lm.generate_batch(requests)
    expected, calls = run_reference(reference_model, tokenizer, requests)
    assert [r.output["token_ids"] for r in results] == expected
    assert results[0].output["forwards"] == calls


def test_reference_is_sensitive_to_its_parameters(
    lm: MaskedDiffusionLM, reference_model, tokenizer
) -> None:
    """The fidelity test above would be vacuous if every setting gave the same tokens."""
    outputs = {
        tuple(lm(replace(REQUEST, **change), ignore_steps).output["token_ids"])
        for change in (
            {},
            {"temperature": 0.8},
            {"remasking": "random"},
            {"cfg_scale": 1.5},
            {"seed": 1, "temperature": 0.8},
        )
    }
    assert len(outputs) == 5


def test_same_seed_same_tokens(lm: MaskedDiffusionLM) -> None:
    request = replace(REQUEST, temperature=0.8, remasking="random")
    first = lm(request, ignore_steps).output["token_ids"]
    assert lm(request, ignore_steps).output["token_ids"] == first
    assert lm(replace(request, seed=request.seed + 1), ignore_steps).output["token_ids"] != first


def test_output_shape(lm: MaskedDiffusionLM) -> None:
    result = lm(replace(REQUEST, gen_length=16, block_length=4, steps=8), ignore_steps)
    ids = result.output["token_ids"]
    assert len(ids) == 16 and lm.mask_id not in ids
    assert result.output["forwards"] == 8 and result.output["forwards_per_token"] == 0.5
    assert result.output["text"] == lm.decode(ids) and result.stages["pipeline"] > 0


# --- Schedule, validation, callbacks ---------------------------------------------------------


def test_num_transfer_tokens_spreads_the_remainder_first() -> None:
    counts = num_transfer_tokens(torch.tensor([10, 8, 3, 0]), 4)
    assert counts.tolist() == [[3, 3, 2, 2], [2, 2, 2, 2], [1, 1, 1, 0], [0, 0, 0, 0]]


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"gen_length": 30}, "gen_length"),
        ({"gen_length": 0}, "gen_length"),
        ({"block_length": 0}, "block_length"),
        ({"steps": 6}, "steps"),
        ({"steps": 0}, "steps"),
        ({"remasking": "greedy"}, "remasking"),
        ({"temperature": -0.1}, "temperature"),
        ({"cfg_scale": -1.0}, "cfg_scale"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": 0.9, "remasking": "random"}, "threshold"),
        ({"prompt": "word " * 1100}, "prompt"),
    ],
)
def test_validation_names_the_parameter(lm: MaskedDiffusionLM, change: dict, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name}\b"):
        lm(replace(REQUEST, **change), ignore_steps)


def test_mask_id_must_differ_from_pad(reference_model, tokenizer) -> None:
    with pytest.raises(ValueError, match="^mask_id"):
        MaskedDiffusionLM(reference_model, tokenizer, "cpu", mask_id=tokenizer.pad_token_id)


def test_batch_needs_shared_parameters(lm: MaskedDiffusionLM) -> None:
    with pytest.raises(ValueError, match="^steps"):
        lm.generate_batch([REQUEST, replace(REQUEST, steps=16)])
    with pytest.raises(ValueError, match="^threshold"):
        lm.generate_batch([REQUEST, replace(REQUEST, threshold=0.5)])
    assert lm.generate_batch([]) == []


def test_on_step_and_on_block_sequence(lm: MaskedDiffusionLM) -> None:
    steps: list[tuple[int, int]] = []
    blocks: list[tuple[int, int, str]] = []
    result = lm(
        REQUEST,
        lambda step, total: steps.append((step, total)),
        lambda block, num_blocks, text: blocks.append((block, num_blocks, text)),
    )
    assert steps == [(i, 32) for i in range(33)]
    ids = result.output["token_ids"]
    assert blocks == [(b, 4, lm.decode(ids[: 8 * b])) for b in range(1, 5)]
    assert blocks[-1][2] == result.output["text"]
    assert all(len(a[2]) < len(b[2]) for a, b in zip(blocks, blocks[1:], strict=False))


def test_cancel_propagates(lm: MaskedDiffusionLM) -> None:
    seen: list[int] = []
    blocks: list[int] = []

    def on_step(step: int, total: int) -> None:
        seen.append(step)
        if step == 3:
            raise JobCanceled("canceled")

    with pytest.raises(JobCanceled):
        lm(REQUEST, on_step, lambda block, n, text: blocks.append(block))
    assert seen == [0, 1, 2, 3] and blocks == []
    with pytest.raises(JobCanceled):
        lm(REQUEST, lambda step, total: (_ for _ in ()).throw(JobCanceled("queued")))
    # Still usable afterwards.
    assert len(lm(REQUEST, ignore_steps).output["token_ids"]) == 32


# --- Threshold decoding ----------------------------------------------------------------------


def test_threshold_needs_fewer_forwards_and_unmasks_everything(lm: MaskedDiffusionLM) -> None:
    plain = lm(REQUEST, ignore_steps).output
    progress: list[tuple[int, int]] = []
    fast = lm(replace(REQUEST, threshold=0.3), lambda s, t: progress.append((s, t))).output
    assert fast["forwards"] < plain["forwards"]
    assert len(fast["token_ids"]) == 32 and lm.mask_id not in fast["token_ids"]
    # Progress counts committed tokens: one call per forward, strictly rising, ending at 32.
    assert progress[0] == (0, 32) and progress[-1] == (32, 32)
    assert len(progress) == fast["forwards"] + 1
    assert all(a[0] < b[0] for a, b in zip(progress, progress[1:], strict=False))
    # A threshold no probability reaches commits one token per forward: the slowest case.
    one_by_one = lm(replace(REQUEST, threshold=1.0), ignore_steps).output
    assert one_by_one["forwards"] == 32 and lm.mask_id not in one_by_one["token_ids"]


class ScriptedLM(torch.nn.Module):
    """Predicts token ``TOKEN + position`` with a fixed probability per position.

    With the mask token excluded, a logit of log(c * (V - 2) / (1 - c)) against zeros gives
    probability c, so every confidence is known in advance.
    """

    VOCAB = 64
    MASK = 1
    TOKEN = 10

    def __init__(self, confidences: list[float]):
        super().__init__()
        self.confidences = confidences
        self.calls = 0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        self.calls += 1
        batch, length = input_ids.shape
        logits = torch.zeros(batch, length, self.VOCAB)
        offset = length - len(self.confidences)
        for i, c in enumerate(self.confidences):
            logit = torch.log(torch.tensor(c * (self.VOCAB - 2) / (1 - c)))
            logits[:, offset + i, self.TOKEN + i] = logit
        return SimpleNamespace(logits=logits)


def test_scripted_threshold_finishes_a_block_in_fewer_forwards() -> None:
    # One block of 8: five tokens are sure (0.95), three are not (0.5, 0.6, 0.7).
    confidences = [0.95, 0.5, 0.95, 0.6, 0.95, 0.95, 0.7, 0.95]
    prompt = torch.tensor([[2, 3, 4]])
    options = {"mask_id": ScriptedLM.MASK, "gen_length": 8, "block_length": 8, "steps": 8}

    plain_model = ScriptedLM(confidences)
    plain, plain_forwards = generate(plain_model, prompt, **options)
    fast_model = ScriptedLM(confidences)
    committed: list[int] = []
    fast, fast_forwards = generate(
        fast_model, prompt, threshold=0.9, on_step=lambda s, t: committed.append(s), **options
    )

    expected = [ScriptedLM.TOKEN + i for i in range(8)]
    assert plain[0, 3:].tolist() == fast[0, 3:].tolist() == expected
    assert (plain_forwards, plain_model.calls) == (8, 8)
    # First forward: the five sure tokens; then the unsure ones one at a time, best first.
    assert (fast_forwards, fast_model.calls) == (4, 4)
    assert committed == [0, 5, 6, 7, 8]


def test_scripted_threshold_with_guidance_counts_two_forwards_per_iteration() -> None:
    model = ScriptedLM([0.95] * 8)
    _, forwards = generate(
        model,
        torch.tensor([[2, 3]]),
        mask_id=ScriptedLM.MASK,
        gen_length=8,
        block_length=4,
        steps=8,
        cfg_scale=1.0,
        threshold=0.9,
    )
    assert forwards == model.calls == 4  # one iteration per block, two calls each


# --- Registry and loader ---------------------------------------------------------------------


def test_registry_reads_text_models() -> None:
    registry = parse_registry(
        {
            "models": {
                "tiny-dllm": {
                    "family": "dllm",
                    "path": "/models/tiny-mlm",
                    "defaults": {"gen_length": 64, "remasking": "random"},
                    "limits": {"max_gen_length": 128, "max_batch": 4},
                },
                "llada": {
                    "kind": "text",
                    "family": "dllm",
                    "path": "/models/llada",
                    "trust_remote_code": True,
                },
                "tiny-sd": {"path": "/models/tiny-sd"},
            }
        }
    )
    spec = registry.get("tiny-dllm")
    assert spec is not None and (spec.kind, spec.family) == ("text", "dllm")
    assert spec.defaults.gen_length == 64 and spec.defaults.block_length == 8
    assert spec.defaults.remasking == "random" and spec.defaults.steps == 32
    assert spec.limits.max_gen_length == 128 and spec.limits.max_text_steps == 512
    assert spec.limits.max_batch == 4 and not spec.trust_remote_code
    assert registry.get("llada").trust_remote_code
    image = registry.get("tiny-sd")
    assert (image.kind, image.family, image.defaults.width) == ("image", "sd", 64)
    assert Defaults().temperature == 0.0 and Defaults().cfg_scale == 0.0


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"kind": "image", "family": "dllm", "path": "/m"}, "kind"),
        ({"family": "dllm"}, "path"),
        ({"family": "dllm", "path": "/m", "trust_remote_code": "yes"}, "trust_remote_code"),
        ({"family": "dllm", "path": "/m", "defaults": {"remasking": "best"}}, "remasking"),
        ({"family": "dllm", "path": "/m", "defaults": {"top_p": 0.9}}, "top_p"),
    ],
)
def test_registry_rejects_bad_text_models(model: dict, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_registry({"models": {"bad": model}})


def test_loader_builds_dllm(tiny_path: Path) -> None:
    spec = ModelSpec(name="tiny-dllm", kind="text", family="dllm", path=str(tiny_path))
    pipeline = load_pipeline(spec, "cpu")
    assert isinstance(pipeline, MaskedDiffusionLM)
    assert pipeline.mask_id == 4 and pipeline.pad_id == 0
    with pytest.raises(ValueError, match="no path"):
        load_pipeline(replace(spec, path=None), "cpu")


def test_tiny_mlm_is_deterministic(tmp_path: Path, tiny_path: Path) -> None:
    again = make_tiny_mlm(tmp_path / "again")
    assert (again / "model.safetensors").read_bytes() == (
        tiny_path / "model.safetensors"
    ).read_bytes()


def test_registry_and_base_stay_torch_free() -> None:
    code = (
        "import sys, pipelines, pipelines.base, pipelines.registry\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
