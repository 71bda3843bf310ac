"""Tiny random-weight checkpoints of each image family, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.tiny import make_tiny


@pytest.fixture(scope="session")
def tiny_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-image")
    return {family: make_tiny(root / family, family) for family in ("sd", "sdxl", "sd3")}


@pytest.fixture(scope="session")
def tiny_path(tiny_paths: dict[str, Path]) -> Path:
    """The tiny Stable Diffusion (1.x layout) checkpoint."""
    return tiny_paths["sd"]
