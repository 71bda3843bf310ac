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

from pipelines.text_params import REMASKING

KINDS = ("image", "text", "noop")
FAMILIES = ("sd", "dllm", "noop")
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
class ModelSpec:
    name: str
    kind: str
    family: str
    path: str | None = None
    defaults: Defaults = field(default_factory=Defaults)
    limits: Limits = field(default_factory=Limits)
    # Run modelling code shipped inside the checkpoint directory (real LLaDA needs it).
    trust_remote_code: bool = False


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
            limits=_section(Limits, name, "limits", raw.get("limits")),
            trust_remote_code=trust_remote_code,
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
