"""Object store for artifacts: S3/MinIO through the ``minio`` client, or a local directory.

Keys are deterministic (``{owner}/{job_id}/{n}.png``) so a retried upload overwrites its own
object instead of leaving an orphan. Clients get time-limited URLs: presigned GETs from S3,
or for the local backend URLs on the API signed with the deployment's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from genq.settings import Settings


def artifact_key(owner: str, job_id: str, n: int, ext: str = "png") -> str:
    return f"{owner}/{job_id}/{n}.{ext}"


class ObjectStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def url(self, key: str, ttl_s: int) -> tuple[str, datetime | None]:
        """A URL a client can GET, and when it stops working (None: never)."""
        ...

    def check(self) -> None:
        """Raise when the store cannot be reached (readiness probe)."""
        ...

    def key_for_url(self, url: str) -> str | None:
        """The key of an object this store's URLs point at, or None for a foreign URL."""
        ...


class S3Store:
    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        *,
        secure: bool = False,
        region: str = "us-east-1",
        public_base_url: str = "",
    ):
        from minio import Minio

        # The region is given so presigning is pure computation, never a network round trip.
        self.client = Minio(
            endpoint, access_key=access_key, secret_key=secret_key, secure=secure, region=region
        )
        self.bucket = bucket
        self.public_base_url = public_base_url.rstrip("/")
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        from minio.error import S3Error

        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:  # another worker made it first
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._ensure_bucket()
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    def get(self, key: str) -> bytes:
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def url(self, key: str, ttl_s: int) -> tuple[str, datetime | None]:
        if self.public_base_url:
            return f"{self.public_base_url}/{quote(key)}", None
        from datetime import timedelta

        url = self.client.presigned_get_object(self.bucket, key, expires=timedelta(seconds=ttl_s))
        return url, datetime.fromtimestamp(int(time.time()) + ttl_s, UTC)

    def check(self) -> None:
        self._ensure_bucket()

    def key_for_url(self, url: str) -> str | None:
        """The key behind one of this store's URLs (presigned or public), else None."""
        if self.public_base_url and url.startswith(self.public_base_url + "/"):
            return unquote(url[len(self.public_base_url) + 1 :].split("?", 1)[0])
        path = urlsplit(url).path
        prefix = f"/{self.bucket}/"
        return unquote(path[len(prefix) :]) if path.startswith(prefix) else None


class LocalStore:
    """Artifacts in a directory, served by the API at ``/v1/files/<key>`` with signed URLs."""

    def __init__(self, root: str | Path, public_url: str, secret: str):
        self.root = Path(root).resolve()
        self.public_url = public_url.rstrip("/")
        self.secret = secret.encode()

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"key {key!r} escapes the store")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see a half-written file

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, signature: str) -> bool:
        if expires < time.time():
            return False
        return hmac.compare_digest(self.signature(key, expires).encode(), signature.encode())

    def url(self, key: str, ttl_s: int) -> tuple[str, datetime | None]:
        expires = int(time.time()) + ttl_s
        sig = self.signature(key, expires)
        url = f"{self.public_url}/v1/files/{quote(key)}?expires={expires}&signature={sig}"
        return url, datetime.fromtimestamp(expires, UTC)

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def key_for_url(self, url: str) -> str | None:
        """The key behind one of this store's URLs, else None (the signature is not needed:
        the caller checks the key belongs to the requester)."""
        path = urlsplit(url).path
        prefix = "/v1/files/"
        return unquote(path[len(prefix) :]) if path.startswith(prefix) else None


def make_store(settings: Settings) -> ObjectStore:
    if settings.store == "s3":
        return S3Store(
            settings.s3_endpoint,
            settings.s3_access_key,
            settings.s3_secret_key,
            settings.s3_bucket,
            secure=settings.s3_secure,
            region=settings.s3_region,
            public_base_url=settings.s3_public_base_url,
        )
    return LocalStore(settings.local_store_dir, settings.public_url, settings.secret_key)
