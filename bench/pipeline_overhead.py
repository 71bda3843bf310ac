"""Pipeline overhead: a genq job's worker time against a direct diffusers call, side by side.

The same tiny Stable Diffusion checkpoint, sized so one image takes about a second on this
CPU, with the same parameters and seeds, run alternately (a) as a genq job through the API
and a live worker — its worker time ``metrics.run_s``: generation through genq's staged
pipeline, PNG encoding and the upload, but not queue time — and (b) as
``StableDiffusionPipeline.__call__`` in this process. Usage: ``python bench/pipeline_overhead.py``.
The last line is one JSON object with ``overhead_ratio`` (median genq / median direct).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genq import local_services as ls  # noqa: E402
from genq.settings import Settings  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
PARAMS = {
    "prompt": "a lighthouse at dusk",
    "width": 256,
    "height": 256,
    "num_inference_steps": 30,
    "guidance_scale": 7.5,
}


def main() -> None:
    import redis
    import torch
    from diffusers import StableDiffusionPipeline

    import migrations
    from api import create_app
    from pipelines.tiny import make_tiny_sd
    from storage.db import session_factory
    from storage.keys import create_key

    tmp = Path(tempfile.mkdtemp(prefix="genq-bench-"))
    model = make_tiny_sd(tmp / "tiny-sd")
    models = tmp / "models.toml"
    models.write_text(
        f'[models.sd]\nfamily = "sd"\npath = "{model}"\n'
        "[models.sd.limits]\nmax_width = 512\nmax_height = 512\n"
    )
    pg = ls.ensure_postgres(tmp / "pg")
    broker = f"{ls.ensure_redis(tmp / 'redis').url}/12"
    redis.Redis.from_url(broker).flushdb()
    with ls.fresh_database(pg.url, "genq_bench_pipeline") as db_url:
        migrations.upgrade(db_url)
        settings = Settings(
            database_url=db_url,
            broker_url=broker,
            store="local",
            local_store_dir=str(tmp / "artifacts"),
            models_file=str(models),
            queue="genq.bench.pipeline",
            device="cpu",
        )
        with session_factory(db_url)() as s:
            auth = {"Authorization": f"Bearer {create_key(s, 'bench')}"}
        client = create_app({"GENQ_SETTINGS": settings}).test_client()
        worker = ls.start_worker(
            {**settings.to_env(), "GENQ_PRELOAD_MODELS": "sd"},
            tmp / "worker.log",
            queues=settings.queue,
        )
        direct = StableDiffusionPipeline.from_pretrained(
            model, safety_checker=None, requires_safety_checker=False, local_files_only=True
        )
        direct.set_progress_bar_config(disable=True)
        genq_s, direct_s = [], []
        try:
            for i in range(RUNS + 1):  # the first round warms both up and is not counted
                body = {"model": "sd", "input": {**PARAMS, "seed": i}}
                job = client.post(
                    "/v1/jobs", json=body, headers={**auth, "Prefer": "wait=120"}
                ).get_json()
                assert job["status"] == "succeeded", job
                started = time.perf_counter()
                direct(
                    **{k: v for k, v in PARAMS.items()},
                    generator=torch.Generator("cpu").manual_seed(i),
                )
                elapsed = time.perf_counter() - started
                if i:
                    genq_s.append(job["metrics"]["run_s"])
                    direct_s.append(elapsed)
        finally:
            worker.stop()
    genq, plain = statistics.median(genq_s), statistics.median(direct_s)
    figures = {
        "genq_run_s_median": round(genq, 4),
        "direct_s_median": round(plain, 4),
        "overhead_ratio": round(genq / plain, 4),
        "runs": RUNS,
        "image": f"{PARAMS['width']}x{PARAMS['height']}, {PARAMS['num_inference_steps']} steps",
    }
    print(f"genq job (worker time: generate + encode + upload): {genq:.3f} s median")
    print(f"direct StableDiffusionPipeline call:                {plain:.3f} s median")
    print(f"overhead_ratio {figures['overhead_ratio']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
