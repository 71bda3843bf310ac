"""``/v1/files``: artifacts of the local-disk store, behind signed, expiring URLs.

The URL itself is the capability (like a presigned S3 URL), so no API key is needed.
"""

from __future__ import annotations

import mimetypes

from flask import Blueprint, Response, request, send_file

from api.errors import Problem, not_found
from api.services import services
from storage.objects import LocalStore

bp = Blueprint("files", __name__, url_prefix="/v1/files")


@bp.get("/<path:key>")
def get_file(key: str) -> Response:
    """Serve one artifact if the URL's signature is valid and unexpired."""
    store = services().store
    if not isinstance(store, LocalStore):
        raise not_found("file")
    expires = request.args.get("expires", "")
    signature = request.args.get("signature", "")
    well_formed = expires.isascii() and expires.isdigit() and len(expires) <= 12
    if not well_formed or not store.verify(key, int(expires), signature):
        raise Problem(403, "Forbidden", "the URL is unsigned, tampered with or expired")
    try:
        path = store.path(key)
    except ValueError:
        raise not_found("file") from None
    if not path.is_file():
        raise not_found("file")
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return send_file(path, mimetype=mimetype, max_age=60)
