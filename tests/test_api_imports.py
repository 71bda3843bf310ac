"""The API process never imports torch (nor the other model libraries): it validates,
records and publishes jobs by name, so it stays small and starts fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "safetensors")

SCRIPT = (
    f"HEAVY = {HEAVY!r}\n"
    + """
import json, sys
import migrations
from genq.settings import get_settings
migrations.upgrade(get_settings().database_url)
from api import create_app
from storage.db import session_factory
from storage.keys import create_key
app = create_app()
with session_factory(get_settings().database_url)() as s:
    token = create_key(s, "importer")
client = app.test_client()
auth = {"Authorization": "Bearer " + token}
statuses = [
    client.get("/openapi.json").status_code,
    client.get("/v1/jobs", headers=auth).status_code,
    client.post("/v1/jobs", json={"model": "tiny-sd", "input": {}}, headers=auth).status_code,
]
print(json.dumps({
    "statuses": statuses,
    "models": app.extensions["genq"].registry.names(),
    "loaded": sorted(m for m in HEAVY if m in sys.modules),
}))
"""
)


def test_api_never_imports_torch(tmp_path: Path, models_file: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENQ_")}
    env.update(
        GENQ_ENV="development",
        GENQ_DATABASE_URL=f"sqlite:///{tmp_path / 'genq.db'}",
        GENQ_STORE="local",
        GENQ_LOCAL_STORE_DIR=str(tmp_path / "artifacts"),
        GENQ_BROKER_URL="redis://127.0.0.1:1/0",  # never contacted: nothing valid is submitted
        GENQ_MODELS_FILE=str(models_file),
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [200, 200, 422]
    assert "tiny-sd" in report["models"]  # the registry of real models was read
    assert report["loaded"] == []
