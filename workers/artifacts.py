"""Encoding and uploading a job's outputs, with retries for transient store failures."""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded

from genq import __version__
from genq.settings import Settings
from storage.jobs import StoredArtifact
from storage.objects import ObjectStore, artifact_key

log = logging.getLogger("genq.worker")
T = TypeVar("T")


class StorageUnavailable(Exception):
    """The object store kept failing after every retry."""


def with_retries(fn: Callable[[], T], *, tries: int, backoff_s: float, what: str) -> T:
    """Retry a storage call with exponential backoff; transient outages are common."""
    for attempt in range(tries):
        try:
            return fn()
        except SoftTimeLimitExceeded:
            raise  # the job's time is up: that is a timeout, not a storage failure
        except Exception as exc:  # minio raises urllib3, socket and S3 errors alike
            if attempt == tries - 1:
                raise StorageUnavailable(f"{what} failed after {tries} tries: {exc}") from exc
            delay = backoff_s * 2**attempt
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def encode_png(image: Any, metadata: dict[str, str]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in metadata.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def provenance(job: Any, output: dict[str, Any]) -> dict[str, str]:
    """PNG text chunks saying how the image was made; the job's output says the same."""
    params = job.input
    found = {
        "genq:model": job.model,
        "genq:seed": str(job.seed),
        "genq:steps": str(params.get("num_inference_steps")),
        "genq:guidance_scale": str(params.get("guidance_scale")),
        "genq:scheduler": str(output.get("scheduler") or params.get("scheduler") or ""),
        "genq:job_id": job.id,
        "genq:version": __version__,
        "parameters": repr(sorted((k, v) for k, v in params.items() if k != "image_key")),
    }
    if params.get("image_key"):
        found["genq:strength"] = str(params.get("strength"))
    return found


def upload(
    store: ObjectStore,
    settings: Settings,
    job: Any,
    n: int,
    data: bytes,
    content_type: str,
    ext: str,
    size: tuple[int, int] | None = None,
) -> StoredArtifact:
    key = artifact_key(job.owner, job.id, n, ext)
    with_retries(
        lambda: store.put(key, data, content_type),
        tries=settings.storage_retries,
        backoff_s=settings.storage_backoff_s,
        what=f"upload of {key}",
    )
    return StoredArtifact(
        n=n,
        key=key,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        content_type=content_type,
        width=size[0] if size else None,
        height=size[1] if size else None,
    )
