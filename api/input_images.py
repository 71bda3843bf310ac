"""Input images of image-to-image jobs: an upload in the request, or one of your artifacts.

Uploads are decoded and checked here (format, size), re-encoded as PNG and stored beside
the job's outputs, so the job row holds a key, never megabytes of base64. An artifact URL
is accepted only when it names an artifact of the caller's own.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas import FieldErrors
from storage.models import Artifact
from storage.objects import ObjectStore

FORMATS = {"PNG", "JPEG", "WEBP"}
MAX_PIXELS = 4096 * 4096


def _error(field: str, message: str) -> FieldErrors:
    return FieldErrors([{"field": f"input.{field}", "message": message}])


def decode_upload(data: str) -> bytes:
    """A base64 image (or ``data:`` URL) as PNG bytes; refuses anything that is not one."""
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _error("image", "is not valid base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format not in FORMATS:
                raise _error("image", f"must be one of {sorted(FORMATS)}, not {image.format}")
            if image.width * image.height > MAX_PIXELS:
                raise _error("image", f"must have at most {MAX_PIXELS} pixels")
            out = io.BytesIO()
            image.convert("RGB").save(out, format="PNG")
            return out.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise _error("image", "is not a readable image") from None


def check_input_image(
    resolved: dict[str, Any], *, owner: str, store: ObjectStore, session: Session
) -> bytes | str | None:
    """Validate the input image without storing anything: PNG bytes for an upload, the key
    for an artifact URL, None without an input image. Removes the raw fields."""
    upload, url = resolved.pop("image", None), resolved.pop("image_url", None)
    if upload is not None:
        return decode_upload(upload)
    if url is None:
        return None
    key = store.key_for_url(url)
    owned = (
        key is not None
        and key.startswith(f"{owner}/")
        and session.scalar(select(Artifact.id).where(Artifact.key == key))
    )
    if not owned:
        raise _error("image_url", "is not the URL of one of your genq artifacts")
    return key


def store_input_image(
    resolved: dict[str, Any],
    checked: bytes | str | None,
    *,
    owner: str,
    job_id: str,
    store: ObjectStore,
) -> None:
    """Record the checked input image as ``image_key``, uploading an upload beside the job."""
    if isinstance(checked, bytes):
        key = f"{owner}/{job_id}/input.png"
        store.put(key, checked, "image/png")
        resolved["image_key"] = key
    elif checked is not None:
        resolved["image_key"] = checked


def attach_input_image(
    resolved: dict[str, Any], *, owner: str, job_id: str, store: ObjectStore, session: Session
) -> None:
    """Check and store the input image of one job."""
    checked = check_input_image(resolved, owner=owner, store=store, session=session)
    store_input_image(resolved, checked, owner=owner, job_id=job_id, store=store)
