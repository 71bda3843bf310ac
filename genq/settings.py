"""One settings object, read from ``GENQ_*`` environment variables.

Every process (API, worker, CLI, tests) builds its configuration here, so a value means the
same thing everywhere. Secrets have development defaults only: with ``GENQ_ENV`` set to
anything but ``development`` a missing or placeholder secret is a start-up error, never a
silently weak deployment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

DEV_SECRET = "dev-insecure-secret"
PLACEHOLDERS = {"", "changeme", "change-me", "secret", DEV_SECRET, "minioadmin"}
SECRET_FIELDS = ("secret_key", "s3_secret_key")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = "sqlite:///.genq/genq.db"
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Object store: "s3" (MinIO or any S3 endpoint) or "local" (files served by the API).
    store: str = "local"
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"
    s3_bucket: str = "genq"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    # When set, artifact URLs are "{s3_public_base_url}/{key}" (a public bucket or CDN)
    # instead of presigned GETs.
    s3_public_base_url: str = ""
    local_store_dir: str = ".genq/artifacts"
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = DEV_SECRET
    models_file: str = ""
    queue: str = "genq.jobs"
    # Limits.
    max_body_bytes: int = 1_000_000
    max_wait_s: float = 60.0
    url_ttl_s: int = 3600
    page_size_max: int = 100
    job_soft_limit_s: int = 1800
    job_hard_limit_s: int = 1900
    lease_s: float = 120.0
    max_attempts: int = 3
    republish_after_s: float = 300.0
    reconcile_every_s: float = 30.0
    storage_retries: int = 4
    storage_backoff_s: float = 0.5
    # Webhooks.
    webhook_queue: str = "genq.webhooks"
    webhook_timeout_s: float = 15.0
    # Multiplies the Standard Webhooks retry schedule (5 s … 24 h); tests make it tiny.
    webhook_schedule_scale: float = 1.0
    webhook_poll_s: float = 1.0
    webhook_progress_interval_s: float = 5.0
    webhook_secret_overlap_s: float = 86400.0
    # Hosts (names or IPs, comma-separated) exempt from the public-address check.
    webhook_allow_hosts: str = ""
    # Models each worker process loads and health-checks before taking tasks (comma-separated).
    preload_models: str = ""
    # Device of this worker process: "auto" (cuda when present, else cpu), "cpu", "cuda".
    device: str = "auto"

    @property
    def development(self) -> bool:
        return self.env == "development"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``GENQ_<FIELD>`` variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"GENQ_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _parse(f.name, f.type, raw)
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse placeholder secrets outside development and nonsensical limits."""
        if not self.development:
            for name in SECRET_FIELDS:
                if name == "s3_secret_key" and self.store != "s3":
                    continue
                if getattr(self, name) in PLACEHOLDERS:
                    raise SettingsError(
                        f"GENQ_{name.upper()} must be set to a real secret when GENQ_ENV={self.env}"
                    )
        if self.store not in ("s3", "local"):
            raise SettingsError(f"GENQ_STORE must be 's3' or 'local', not {self.store!r}")
        if self.job_hard_limit_s <= self.job_soft_limit_s:
            raise SettingsError("GENQ_JOB_HARD_LIMIT_S must exceed GENQ_JOB_SOFT_LIMIT_S")

    def to_env(self) -> dict[str, str]:
        """These settings as ``GENQ_*`` variables, for starting another genq process."""
        env = {}
        for f in fields(self):
            value = getattr(self, f.name)
            env[f"GENQ_{f.name.upper()}"] = str(int(value) if isinstance(value, bool) else value)
        return env

    @property
    def webhook_allowed(self) -> frozenset[str]:
        return frozenset(
            h.strip().lower() for h in self.webhook_allow_hosts.split(",") if h.strip()
        )

    @property
    def visibility_timeout_s(self) -> int:
        """Redis redelivers an unacked task after this; it must outlive the hard limit."""
        return int(self.job_hard_limit_s * 2 + 60)


def _parse(name: str, kind: Any, raw: str) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"GENQ_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw


_cached: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    global _cached
    if _cached is None:
        _cached = Settings.from_env()
    return _cached
