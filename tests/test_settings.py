"""Settings from GENQ_* variables: typed, named in every error, safe outside development."""

from __future__ import annotations

import dataclasses

import pytest

from genq.settings import DEV_SECRET, Settings, SettingsError

PROD = {"GENQ_ENV": "production", "GENQ_SECRET_KEY": "a-real-secret-0123456789"}


def test_reads_typed_values():
    s = Settings.from_env(
        {
            "GENQ_DATABASE_URL": "postgresql+psycopg://u@db/genq",
            "GENQ_MAX_BODY_BYTES": "2048",
            "GENQ_MAX_ATTEMPTS": "5",
            "GENQ_LEASE_S": "12.5",
            "GENQ_MAX_WAIT_S": "3",
            "GENQ_S3_SECURE": "true",
            "GENQ_QUEUE": "genq.gpu",
            "NOT_GENQ_QUEUE": "ignored",
            "GENQ_UNKNOWN_THING": "ignored",
        }
    )
    assert s.database_url == "postgresql+psycopg://u@db/genq"
    assert s.max_body_bytes == 2048 and type(s.max_body_bytes) is int
    assert s.max_attempts == 5 and type(s.max_attempts) is int
    assert s.lease_s == 12.5 and type(s.lease_s) is float
    assert s.max_wait_s == 3.0 and type(s.max_wait_s) is float
    assert s.s3_secure is True
    assert s.queue == "genq.gpu"
    assert s.env == "development"  # unset values keep their defaults
    assert s.broker_url == Settings().broker_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True)]
    + [("0", False), ("false", False), ("No", False), ("off", False), ("", False)],
)
def test_reads_booleans(raw, expected):
    assert Settings.from_env({"GENQ_S3_SECURE": raw}).s3_secure is expected


def test_empty_environment_is_the_defaults():
    assert Settings.from_env({}) == Settings()


def test_overrides_win_over_the_environment():
    s = Settings.from_env({"GENQ_QUEUE": "from-env"}, queue="from-code")
    assert s.queue == "from-code"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("GENQ_MAX_ATTEMPTS", "three"),
        ("GENQ_MAX_BODY_BYTES", "1.5"),
        ("GENQ_LEASE_S", "soon"),
        ("GENQ_MAX_WAIT_S", ""),
        ("GENQ_S3_SECURE", "maybe"),
    ],
)
def test_malformed_value_names_the_variable(name, raw):
    with pytest.raises(SettingsError, match=name) as info:
        Settings.from_env({name: raw})
    assert repr(raw) in str(info.value)


def test_production_refuses_the_default_secret_key():
    with pytest.raises(SettingsError, match="GENQ_SECRET_KEY"):
        Settings.from_env({"GENQ_ENV": "production"})
    for placeholder in ("", "changeme", "secret", DEV_SECRET):
        with pytest.raises(SettingsError, match="GENQ_SECRET_KEY"):
            Settings.from_env({"GENQ_ENV": "production", "GENQ_SECRET_KEY": placeholder})


def test_production_refuses_placeholder_s3_secret():
    env = {**PROD, "GENQ_STORE": "s3", "GENQ_S3_SECRET_KEY": "minioadmin"}
    with pytest.raises(SettingsError, match="GENQ_S3_SECRET_KEY"):
        Settings.from_env(env)
    with pytest.raises(SettingsError, match="GENQ_S3_SECRET_KEY"):
        Settings.from_env({**PROD, "GENQ_STORE": "s3"})  # the default is the placeholder
    ok = Settings.from_env({**env, "GENQ_S3_SECRET_KEY": "s3-real-secret"})
    assert ok.store == "s3"


def test_production_with_local_store_ignores_the_s3_secret():
    s = Settings.from_env({**PROD, "GENQ_STORE": "local"})
    assert s.s3_secret_key == "minioadmin" and s.env == "production"


def test_any_non_development_env_checks_secrets():
    with pytest.raises(SettingsError, match="GENQ_SECRET_KEY"):
        Settings.from_env({"GENQ_ENV": "staging"})


def test_development_accepts_the_defaults():
    s = Settings.from_env({"GENQ_ENV": "development", "GENQ_STORE": "s3"})
    assert s.development
    assert s.secret_key == DEV_SECRET
    assert s.s3_secret_key == "minioadmin"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"GENQ_STORE": "ftp"}, "GENQ_STORE"),
        ({"GENQ_JOB_SOFT_LIMIT_S": "100", "GENQ_JOB_HARD_LIMIT_S": "100"}, "GENQ_JOB_HARD_LIMIT_S"),
    ],
)
def test_nonsensical_values_are_refused(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_to_env_roundtrips():
    original = Settings(
        env="production",
        secret_key="a-real-secret-0123456789",
        store="s3",
        s3_secret_key="s3-real-secret",
        s3_secure=True,
        lease_s=7.25,
        max_attempts=9,
        storage_backoff_s=0.01,
        models_file="",
        s3_public_base_url="https://cdn.example.com/x",
    )
    env = original.to_env()
    assert all(k.startswith("GENQ_") and isinstance(v, str) for k, v in env.items())
    assert env["GENQ_S3_SECURE"] == "1"
    assert set(env) == {f"GENQ_{f.name.upper()}" for f in dataclasses.fields(Settings)}
    assert Settings.from_env(env) == original
    assert Settings.from_env(Settings().to_env()) == Settings()
