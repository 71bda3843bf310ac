"""Object stores: S3 (against a real S3 endpoint, moto's server) and the local directory,
including the local store's signed URLs served by the API."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from storage.objects import LocalStore, S3Store, artifact_key

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_artifact_key_format():
    assert artifact_key("alice", "job-1", 0) == "alice/job-1/0.png"
    assert artifact_key("alice", "job-1", 3, "jpg") == "alice/job-1/3.jpg"


# --- S3 -----------------------------------------------------------------------------------


@pytest.fixture
def s3(s3_endpoint) -> S3Store:
    return S3Store(s3_endpoint, "genq-test", "genq-test-secret", f"objects-{uuid.uuid4().hex}")


def test_s3_bucket_is_created_when_missing(s3, s3_endpoint):
    assert not s3.client.bucket_exists(s3.bucket)
    s3.check()
    assert s3.client.bucket_exists(s3.bucket)
    s3.check()  # and again is harmless
    # A second store (another worker) on the now-existing bucket is fine too.
    other = S3Store(s3_endpoint, "genq-test", "genq-test-secret", s3.bucket)
    other.put("a/b/0.png", b"x", "image/png")
    assert other.get("a/b/0.png") == b"x"


def test_s3_put_creates_the_bucket_and_roundtrips(s3):
    key = artifact_key("alice", str(uuid.uuid4()), 0)
    s3.put(key, PNG, "image/png")
    assert s3.get(key) == PNG
    stat = s3.client.stat_object(s3.bucket, key)
    assert stat.content_type == "image/png"
    assert stat.size == len(PNG)
    s3.put(key, b"replaced", "image/png")  # deterministic keys: a retry overwrites
    assert s3.get(key) == b"replaced"


def test_s3_presigned_url_is_fetchable_and_expires(s3):
    key = artifact_key("alice", str(uuid.uuid4()), 1)
    s3.put(key, PNG, "image/png")
    url, expires_at = s3.url(key, 600)
    assert key in url
    assert "X-Amz-Signature" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == PNG
    now = datetime.now(UTC)
    assert expires_at is not None and expires_at.tzinfo is not None
    assert now + timedelta(seconds=590) < expires_at <= now + timedelta(seconds=601)


def test_s3_public_base_url_is_a_plain_url(s3_endpoint):
    store = S3Store(
        s3_endpoint,
        "genq-test",
        "genq-test-secret",
        "unused",
        public_base_url="https://cdn.example.com/genq/",
    )
    url, expires_at = store.url("alice/job-1/0.png", 60)
    assert url == "https://cdn.example.com/genq/alice/job-1/0.png"
    assert expires_at is None
    url, _ = store.url("alice/job 1/0.png", 60)
    assert url == "https://cdn.example.com/genq/alice/job%201/0.png"


# --- local --------------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts", "http://localhost/", "local-test-secret")


def _query(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path, int(query["expires"][0]), query["signature"][0]


def test_local_put_get_roundtrip(local, tmp_path):
    key = artifact_key("alice", "job-1", 0)
    local.put(key, PNG, "image/png")
    assert local.get(key) == PNG
    assert (tmp_path / "artifacts" / "alice" / "job-1" / "0.png").read_bytes() == PNG
    assert not list((tmp_path / "artifacts").rglob("*.part"))


def test_local_url_is_signed_and_verifies(local):
    key = artifact_key("alice", "job-1", 0)
    url, expires_at = local.url(key, 300)
    path, expires, signature = _query(url)
    assert url.startswith("http://localhost/v1/files/")
    assert path == f"/v1/files/{key}"
    assert expires_at == datetime.fromtimestamp(expires, UTC)
    assert time.time() + 290 < expires <= time.time() + 301
    assert local.verify(key, expires, signature)


def test_local_url_refuses_tampering_and_expiry(local):
    key = artifact_key("alice", "job-1", 0)
    _, expires, signature = _query(local.url(key, 300)[0])
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert not local.verify(key, expires, flipped)
    assert not local.verify(key, expires + 1, signature)  # a longer life is a new signature
    assert not local.verify(artifact_key("alice", "job-2", 0), expires, signature)
    assert not local.verify(key, expires, "")
    past = int(time.time()) - 1
    assert not local.verify(key, past, local.signature(key, past))
    other = LocalStore(local.root, "http://localhost", "another-deployment")
    assert not other.verify(key, expires, signature)


@pytest.mark.parametrize("key", ["../escape.png", "alice/../../escape.png", "/etc/passwd"])
def test_local_refuses_keys_outside_the_root(local, tmp_path, key):
    with pytest.raises(ValueError):
        local.path(key)
    with pytest.raises(ValueError):
        local.put(key, b"x", "image/png")
    with pytest.raises(ValueError):
        local.get(key)
    assert not (tmp_path / "escape.png").exists()


# --- local over HTTP ----------------------------------------------------------------------


@pytest.fixture
def local_app(settings, tmp_path):
    from api import create_app

    local_settings = dataclasses.replace(
        settings, store="local", local_store_dir=str(tmp_path), public_url="http://localhost"
    )
    return create_app({"TESTING": True, "GENQ_SETTINGS": local_settings})


@pytest.fixture
def served(local_app) -> tuple[LocalStore, str, str]:
    """A stored artifact and its signed URL's path and query."""
    store = local_app.extensions["genq"].store
    assert isinstance(store, LocalStore)
    key = artifact_key("alice", str(uuid.uuid4()), 0)
    store.put(key, PNG, "image/png")
    url, _ = store.url(key, 300)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == "http://localhost"
    return store, key, f"{parts.path}?{parts.query}"


def test_files_serves_a_signed_url(local_app, served):
    _, _, path = served
    response = local_app.test_client().get(path)  # no API key: the URL is the capability
    assert response.status_code == 200
    assert response.data == PNG
    assert response.mimetype == "image/png"


def test_files_refuses_a_tampered_url(local_app, served):
    store, key, path = served
    client = local_app.test_client()
    _, expires, signature = _query(path)
    bad = ("0" if signature[0] != "0" else "1") + signature[1:]
    for query in (
        f"expires={expires}&signature={bad}",
        f"expires={expires + 60}&signature={signature}",
        f"expires={expires}",
        f"signature={signature}",
        "",
        f"expires=soon&signature={signature}",
    ):
        response = client.get(f"/v1/files/{key}?{query}")
        assert response.status_code == 403, query
        assert response.content_type == "application/problem+json"
        assert PNG not in response.data
    other_key = key.replace("/0.png", "/1.png")
    store.put(other_key, b"other", "image/png")
    assert (
        client.get(f"/v1/files/{other_key}?expires={expires}&signature={signature}").status_code
        == 403
    )


def test_files_refuses_an_expired_url(local_app, served):
    store, key, _ = served
    past = int(time.time()) - 5
    response = local_app.test_client().get(
        f"/v1/files/{key}?expires={past}&signature={store.signature(key, past)}"
    )
    assert response.status_code == 403
    assert response.get_json()["status"] == 403


def test_files_signed_url_for_a_missing_file_is_404(local_app, served):
    store, _, _ = served
    key = artifact_key("alice", "never-written", 0)
    url, _ = store.url(key, 300)
    response = local_app.test_client().get(url.removeprefix("http://localhost"))
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def test_files_are_not_served_by_an_s3_backed_app(client, served):
    _, _, path = served
    assert client.get(path).status_code == 404


def test_files_refuses_a_non_ascii_signature(local_app, served):
    _, key, path = served
    _, expires, _ = _query(path)
    response = local_app.test_client().get(f"/v1/files/{key}?expires={expires}&signature=%C3%A9")
    assert response.status_code == 403


@pytest.mark.parametrize("expires", ["%C2%B2", "9" * 5000])
def test_files_refuses_an_unparseable_expiry(local_app, served, expires):
    _, key, path = served
    _, _, signature = _query(path)
    response = local_app.test_client().get(
        f"/v1/files/{key}?expires={expires}&signature={signature}"
    )
    assert response.status_code == 403
