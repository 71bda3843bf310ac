"""The model registry: which models a deployment serves, and their defaults and limits.

Read from a TOML file (``GENQ_MODELS_FILE``)::

    [models.tiny-sd]
    kind = "image"          # image | text | noop
    family = "sd"           # which pipeline builds it
    path = "/models/tiny-sd"
    [models.tiny-sd.defaults]
    width = 64
    num_inference_steps = 4
    [models.tiny-sd.limits]
    max_width = 256

Image families: ``sd`` (Stable Diffusion 1.x/2.x), ``sdxl`` and ``sd3``. A model may switch on
accelerations in its ``accel`` table (see :class:`Accel`)::

    [models.sd3-medium]
    family = "sd3"
    path = "/models/stable-diffusion-3-medium-diffusers"
    [models.sd3-medium.accel]
    cache = "first_block_cache"   # or "taylorseer"; DiT families only
    cache_threshold = 0.1
    compile = true
    dtype = "bfloat16"

A masked diffusion language model (LLaDA-style, ``kind = "text"``) is declared the same way::

    [models.llada]
    kind = "text"           # the default for family "dllm"
    family = "dllm"
    path = "/models/LLaDA-8B-Instruct"
    trust_remote_code = true  # LLaDA ships its modelling code in the checkpoint
    [models.llada.defaults]
    gen_length = 128
    block_length = 32
    steps = 128
    [models.llada.limits]
    max_gen_length = 256

The API validates requests against it and workers load pipelines from it, so both read the
same file. With no file, only the built-in ``noop`` model is served.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipelines.image_params import SIZE_MULTIPLES
from pipelines.text_params import REMASKING

KINDS = ("image", "text", "noop")
FAMILIES = ("sd", "sdxl", "sd3", "dllm", "noop")
IMAGE_FAMILIES = ("sd", "sdxl", "sd3")
# Families whose denoiser is a diffusion transformer, which diffusers' cache hooks support.
DIT_FAMILIES = ("sd3",)
CACHES = ("first_block_cache", "taylorseer")
DTYPES = ("float32", "bfloat16", "float16")
# Families whose kind is fixed; a model of such a family may omit ``kind``.
FAMILY_KIND = {"dllm": "text"}


class RegistryError(ValueError):
    """The registry file is malformed; the message names the model and key."""


@dataclass(frozen=True)
class Limits:
    min_width: int = 8
    max_width: int = 1024
    min_height: int = 8
    max_height: int = 1024
    size_multiple: int = 8
    max_steps: int = 150
    max_images: int = 4
    max_prompt_chars: int = 4000
    # Text (family "dllm").
    max_gen_length: int = 512
    max_text_steps: int = 512
    # Requests of one model that a worker may decode together in one forward.
    max_batch: int = 8


@dataclass(frozen=True)
class Defaults:
    width: int = 64
    height: int = 64
    num_inference_steps: int = 4
    guidance_scale: float = 7.5
    num_images: int = 1
    # Text (family "dllm"): see pipelines.dllm.
    gen_length: int = 32
    block_length: int = 8
    steps: int = 32
    temperature: float = 0.0
    cfg_scale: float = 0.0
    remasking: str = "low_confidence"


@dataclass(frozen=True)
class Accel:
    """Accelerations of one model, applied when a worker loads it (see ``pipelines.accel``).

    ``cache`` reuses transformer-block outputs across denoising steps with diffusers' hooks:
    ``first_block_cache`` skips the other blocks while the first block's output changes by less
    than ``cache_threshold`` (relative); ``taylorseer`` computes attention fully every
    ``cache_interval`` steps after ``cache_warmup_steps`` and extrapolates it in between.
    ``compile`` applies ``torch.compile`` to the denoiser. ``dtype`` defaults to float16 on CUDA,
    float32 elsewhere. ``attention_backend`` is a diffusers backend name (``"native"``,
    ``"flash"``, ...) passed to ``set_attention_backend``.
    """

    cache: str | None = None
    cache_threshold: float = 0.05
    cache_interval: int = 5
    cache_warmup_steps: int = 3
    compile: bool = False
    dtype: str | None = None
    attention_backend: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str
    family: str
    path: str | None = None
    defaults: Defaults = field(default_factory=Defaults)
    limits: Limits = field(default_factory=Limits)
    # Run modelling code shipped inside the checkpoint directory (real LLaDA needs it).
    trust_remote_code: bool = False
    accel: Accel = field(default_factory=Accel)


def has_chat_template(spec: ModelSpec) -> bool:
    """Whether the checkpoint's tokenizer carries a chat template (read from its files, so
    the API can tell without loading the tokenizer)."""
    if spec.kind != "text" or not spec.path:
        return False
    root = Path(spec.path)
    if (root / "chat_template.jinja").exists() or (root / "chat_template.json").exists():
        return True
    try:
        config = json.loads((root / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(config.get("chat_template"))


NOOP = ModelSpec(name="noop", kind="noop", family="noop")


class Registry:
    def __init__(self, models: dict[str, ModelSpec]):
        self._models = dict(models)

    def get(self, name: str) -> ModelSpec | None:
        return self._models.get(name)

    def names(self) -> list[str]:
        return sorted(self._models)

    def __iter__(self):
        return iter(self._models.values())


def _section(cls: type, model: str, key: str, raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise RegistryError(f"models.{model}.{key} must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = set(raw) - set(known)
    if unknown:
        raise RegistryError(f"models.{model}.{key}: unknown keys {sorted(unknown)}")
    return replace(cls(), **raw)


def _limits(model: str, family: str, raw: Any) -> Limits:
    """The limits table, with the family's size multiple (SD3 patches latents in twos) unless
    the table sets its own, which must then be a multiple of the family's."""
    limits = _section(Limits, model, "limits", raw)
    multiple = SIZE_MULTIPLES.get(family)
    if multiple is None:
        return limits
    if "size_multiple" in (raw or {}):
        if limits.size_multiple % multiple:
            raise RegistryError(
                f"models.{model}.limits.size_multiple must be a multiple of {multiple} "
                f"for family {family!r}"
            )
        return limits
    raw = raw or {}
    return replace(
        limits,
        size_multiple=multiple,
        min_width=limits.min_width if "min_width" in raw else max(limits.min_width, multiple),
        min_height=limits.min_height if "min_height" in raw else max(limits.min_height, multiple),
    )


def _accel(model: str, family: str, raw: Any) -> Accel:
    accel = _section(Accel, model, "accel", raw)
    where = f"models.{model}.accel"
    if raw is not None and family not in IMAGE_FAMILIES:
        raise RegistryError(f"{where} applies to image families {IMAGE_FAMILIES} only")
    if accel.cache is not None:
        if accel.cache not in CACHES:
            raise RegistryError(f"{where}.cache must be one of {CACHES}, not {accel.cache!r}")
        if family not in DIT_FAMILIES:
            raise RegistryError(
                f"{where}.cache needs a diffusion-transformer family {DIT_FAMILIES}, not {family!r}"
            )
    if not accel.cache_threshold > 0:
        raise RegistryError(f"{where}.cache_threshold must be > 0")
    if accel.cache_interval < 1 or accel.cache_warmup_steps < 0:
        raise RegistryError(f"{where}: cache_interval must be >= 1, cache_warmup_steps >= 0")
    if not isinstance(accel.compile, bool):
        raise RegistryError(f"{where}.compile must be true or false")
    if accel.dtype is not None and accel.dtype not in DTYPES:
        raise RegistryError(f"{where}.dtype must be one of {DTYPES}, not {accel.dtype!r}")
    return accel


def parse_registry(data: dict[str, Any], base_dir: Path | None = None) -> Registry:
    models: dict[str, ModelSpec] = {"noop": NOOP}
    for name, raw in (data.get("models") or {}).items():
        family = raw.get("family", "sd")
        kind = raw.get("kind", FAMILY_KIND.get(family, "image"))
        if kind not in KINDS:
            raise RegistryError(f"models.{name}.kind must be one of {KINDS}, not {kind!r}")
        if family not in FAMILIES:
            raise RegistryError(f"models.{name}.family must be one of {FAMILIES}, not {family!r}")
        if family in FAMILY_KIND and kind != FAMILY_KIND[family]:
            raise RegistryError(
                f"models.{name}.kind must be {FAMILY_KIND[family]!r} for family {family!r}"
            )
        trust_remote_code = raw.get("trust_remote_code", False)
        if not isinstance(trust_remote_code, bool):
            raise RegistryError(f"models.{name}.trust_remote_code must be true or false")
        path = raw.get("path")
        if family != "noop" and not path:
            raise RegistryError(f"models.{name}.path is required for family {family!r}")
        if path and base_dir is not None and not Path(path).is_absolute():
            path = str((base_dir / path).resolve())
        defaults = _section(Defaults, name, "defaults", raw.get("defaults"))
        if defaults.remasking not in REMASKING:
            raise RegistryError(f"models.{name}.defaults.remasking must be one of {REMASKING}")
        models[name] = ModelSpec(
            name=name,
            kind=kind,
            family=family,
            path=path,
            defaults=defaults,
            limits=_limits(name, family, raw.get("limits")),
            trust_remote_code=trust_remote_code,
            accel=_accel(name, family, raw.get("accel")),
        )
    return Registry(models)


def load_registry(path: str | None) -> Registry:
    """Load the registry file at ``path``; an empty path serves only ``noop``."""
    if not path:
        return Registry({"noop": NOOP})
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text())
    except FileNotFoundError:
        raise RegistryError(f"models file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"models file {path}: {exc}") from None
    return parse_registry(data, base_dir=file.parent)
