"""Tiny random-weight checkpoints, built locally for tests and demos.

``make_tiny_sd``: a Stable Diffusion checkpoint with the real layout (``unet/``, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``) that loads through
``StableDiffusionPipeline.from_pretrained``, so the code path is the one real models take,
without any download. The images are noise; only shapes and timings matter.
``make_tiny_sdxl`` and ``make_tiny_sd3`` do the same for SDXL (``StableDiffusionXLPipeline``)
and Stable Diffusion 3 (``StableDiffusion3Pipeline``); ``make_tiny(directory, family)`` picks
the builder of a registry family.

``make_tiny_mlm``: a masked language model (BERT: bidirectional, as masked diffusion LMs need)
with a WordPiece tokenizer, loadable by ``AutoModelForMaskedLM``/``AutoTokenizer``. Its text
is gibberish; it exercises the masked-diffusion decoding loop.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

# Latent size 8 x VAE factor 8 = 64 px, so the pipeline's default size matches the registry's.
UNET_SAMPLE_SIZE = 8
TEXT_DIM = 32
VOCAB_SIZE = 1000
MAX_TOKENS = 77
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"


def _bytes_to_unicode() -> list[str]:
    """CLIP's byte-level alphabet: 256 printable characters, one per byte, in CLIP's order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def _write_tokenizer_files(directory: Path) -> None:
    """A merge-free BPE vocabulary: every byte, every byte ending a word, and the two specials."""
    alphabet = _bytes_to_unicode()
    tokens = alphabet + [ch + "</w>" for ch in alphabet] + [BOS, EOS]
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(tokens)}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n")


def _tokenizer():
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        _write_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=MAX_TOKENS)


def _tiny_vae(**config):
    """A four-block VAE: three downsamplings, so the scale factor is 8 as in real checkpoints."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=UNET_SAMPLE_SIZE * 8,
        **{"latent_channels": 4, **config},
    )


def _clip_config(tokenizer, hidden_size: int = TEXT_DIM, **config):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden_size,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config,
    )


# Stable Diffusion v1's and SDXL's noise schedule.
_SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def _save(pipe, directory: Path, tokenizer_dirs: tuple[str, ...]) -> Path:
    pipe.save_pretrained(directory, safe_serialization=True)
    # transformers 5 saves only tokenizer.json; transformers 4's slow CLIPTokenizer needs these.
    for name in tokenizer_dirs:
        _write_tokenizer_files(directory / name)
    return directory


def make_tiny_sd(directory: str | Path) -> Path:
    """Build and save the tiny checkpoint into ``directory``; returns its path.

    Weights come from ``torch.manual_seed(0)``, so two builds are identical.
    """
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer = _tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=UNET_SAMPLE_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_DIM,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = _tiny_vae()
    text_encoder = CLIPTextModel(_clip_config(tokenizer))
    scheduler = DDIMScheduler(
        **_SD_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _save(pipe, Path(directory), ("tokenizer",))


def make_tiny_sdxl(directory: str | Path) -> Path:
    """A tiny SDXL checkpoint: two CLIP text encoders (the second with a projection, whose
    pooled output conditions the UNet with the size "time ids"), loadable by
    ``StableDiffusionXLPipeline.from_pretrained``. Weights from ``torch.manual_seed(0)``."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = _tokenizer()
    torch.manual_seed(0)
    time_embed_dim = 8
    unet = UNet2DConditionModel(
        sample_size=UNET_SAMPLE_SIZE,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        # Both encoders' hidden states side by side, as in SDXL.
        cross_attention_dim=2 * TEXT_DIM,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # Six size numbers (original size, crop corner, target size) and the pooled text.
        projection_class_embeddings_input_dim=6 * time_embed_dim + TEXT_DIM,
        transformer_layers_per_block=(1, 2),
        norm_num_groups=32,
    )
    vae = _tiny_vae(scaling_factor=0.13025)
    text_encoder = CLIPTextModel(_clip_config(tokenizer))
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(tokenizer, projection_dim=TEXT_DIM))
    scheduler = EulerDiscreteScheduler(
        **_SD_BETAS, steps_offset=1, timestep_spacing="leading", interpolation_type="linear"
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    return _save(pipe, Path(directory), ("tokenizer", "tokenizer_2"))


def make_tiny_sd3(
    directory: str | Path,
    *,
    num_layers: int = 4,
    attention_head_dim: int = 8,
    num_attention_heads: int = 4,
) -> Path:
    """A tiny Stable Diffusion 3 checkpoint: an MMDiT (``SD3Transformer2DModel``), a
    flow-matching Euler scheduler, a 16-channel VAE and the two CLIP encoders; the T5 encoder
    is left out (``text_encoder_3=None``), which diffusers replaces with zeros. Loadable by
    ``StableDiffusion3Pipeline.from_pretrained``. Weights from ``torch.manual_seed(0)``.

    The keyword arguments make the transformer bigger, for benchmarks.
    """
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    tokenizer = _tokenizer()
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=UNET_SAMPLE_SIZE,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=num_layers,
        attention_head_dim=attention_head_dim,
        num_attention_heads=num_attention_heads,
        # The CLIP hidden states side by side are as wide as the (absent) T5's would be.
        joint_attention_dim=2 * TEXT_DIM,
        caption_projection_dim=attention_head_dim * num_attention_heads,
        pooled_projection_dim=2 * TEXT_DIM,
        pos_embed_max_size=64,
    )
    vae = _tiny_vae(
        latent_channels=16,
        scaling_factor=1.5305,
        shift_factor=0.0609,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    text_encoder = CLIPTextModelWithProjection(_clip_config(tokenizer, projection_dim=TEXT_DIM))
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(tokenizer, projection_dim=TEXT_DIM))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=_tokenizer(),
        text_encoder_3=None,
        tokenizer_3=None,
    )
    return _save(pipe, Path(directory), ("tokenizer", "tokenizer_2"))


TINY_BUILDERS = {"sd": make_tiny_sd, "sdxl": make_tiny_sdxl, "sd3": make_tiny_sd3}


def make_tiny(directory: str | Path, family: str = "sd") -> Path:
    """Build the tiny checkpoint of an image ``family`` (``sd``, ``sdxl`` or ``sd3``)."""
    try:
        builder = TINY_BUILDERS[family]
    except KeyError:
        raise ValueError(f"family must be one of {tuple(TINY_BUILDERS)}, not {family!r}") from None
    return builder(directory)


# The tiny masked LM: lowercase words, letters and WordPiece suffixes.
MLM_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_MLM_WORDS_TEXT = """
the of and to in is it that was for on are as with his they at be this from have or by one
had not but what all were when we there can an your which their said if do will each about
how up out them then she many some so these would other into has more her two like him see
time could no make than first been its who now people my made over did down only way find use
may water long little very after words called just where most know get through back much
before go good new write our used me man too any day same right look think also around
another came come work three must because does part even place well such here take why help
put different away again off went old number great tell men say small every found still
between name should home big give air line set own under read last never us left end along
while might next sound below saw something thought both few those always show large often
together asked house world going want school important until form food keep children feet
land side without boy once animal life enough took four head above kind began almost live
page got earth need far hand high year mother light country father let night picture being
study second soon story since white ever paper hard near sentence better best across during
today however sure knew try told young sun thing whole hear example heard several change
answer room sea against top turned learn point city play toward five himself usually money
seen car morning red fox snow cat dog tree river
"""
MLM_WORDS = tuple(_MLM_WORDS_TEXT.split())
MLM_MAX_POSITIONS = 1024


def _mlm_vocab() -> list[str]:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    digits = [str(d) for d in range(10)]
    punctuation = list(".,!?;:'\"-()")
    words = list(dict.fromkeys(w for w in MLM_WORDS if w not in letters))
    return (
        MLM_SPECIAL + punctuation + digits + letters + ["##" + c for c in letters + digits] + words
    )


# A minimal chat template (Jinja, as transformers renders it) for chat-completion tests.
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def make_tiny_mlm(directory: str | Path, *, chat_template: str | None = None) -> Path:
    """Build and save a tiny masked LM and its tokenizer into ``directory``; returns its path.

    Weights come from ``torch.manual_seed(0)``, so two builds are identical. With
    ``chat_template`` the tokenizer carries it, like an instruct checkpoint's.
    """
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # vocab.txt stays in the checkpoint: transformers 4's BertTokenizer reads it, 5 reads
    # tokenizer.json.
    (directory / "vocab.txt").write_text("\n".join(_mlm_vocab()) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(
        directory, model_max_length=MLM_MAX_POSITIONS, local_files_only=True
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template

    torch.manual_seed(0)
    model = BertForMaskedLM(
        BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=MLM_MAX_POSITIONS,
            pad_token_id=tokenizer.pad_token_id,
            # BERT's 0.02 makes every prediction ~1/vocab; wider weights spread confidences
            # (about 0.05 to 0.7) as a trained model's are, so confidence-based choices matter.
            initializer_range=0.5,
        )
    )
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
