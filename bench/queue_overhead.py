"""Queue overhead: genq's no-op job against a bare Celery no-op task, side by side.

Compares, in one run on the same Redis:
- latency: HTTP submit of a ``noop`` job (``Prefer: wait``) until it is seen succeeded,
  against a raw Celery ``send_task(...).get()`` round trip (p50, p95);
- throughput: HTTP submits/s (API under gunicorn, 8 client threads) against raw Celery
  publishes/s from one thread.

genq's path includes what raw Celery skips: auth, validation, a Postgres row and event per
transition, the claim/complete compare-and-sets. Usage: ``python bench/queue_overhead.py``.
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from genq import local_services as ls  # noqa: E402
from genq.settings import Settings  # noqa: E402

LATENCY_N = int(os.environ.get("BENCH_LATENCY_N", "100"))
SUBMIT_N = int(os.environ.get("BENCH_SUBMIT_N", "600"))
PUBLISH_N = int(os.environ.get("BENCH_PUBLISH_N", "3000"))
THREADS = 8
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def raw_publish_rate(raw_app) -> float:
    raw_app.send_task("bench.noop", queue="bench.sink")  # connect first
    started = time.perf_counter()
    for _ in range(PUBLISH_N):
        raw_app.send_task("bench.noop", queue="bench.sink")
    return PUBLISH_N / (time.perf_counter() - started)


def http_submit_rate(api: str, headers: dict[str, str]) -> float:
    """Keep-alive ``http.client`` connections: a lean client leaves the CPU to the server."""
    host, port = api.removeprefix("http://").split(":")
    warm = http.client.HTTPConnection(host, int(port))
    for _ in range(20):
        warm.request(
            "POST",
            "/v1/jobs",
            body=json.dumps({"model": "noop"}),
            headers={**headers, "Content-Type": "application/json"},
        )
        warm.getresponse().read()
    connections = [http.client.HTTPConnection(host, int(port)) for _ in range(THREADS)]
    per_thread = SUBMIT_N // THREADS
    body = json.dumps({"model": "noop"})
    request_headers = {**headers, "Content-Type": "application/json"}

    def run(i: int) -> None:
        conn = connections[i]
        for _ in range(per_thread):
            conn.request("POST", "/v1/jobs", body=body, headers=request_headers)
            response = conn.getresponse()
            assert response.status == 202, response.read()
            response.read()

    started = time.perf_counter()
    list(ThreadPoolExecutor(THREADS).map(run, range(THREADS)))
    return per_thread * THREADS / (time.perf_counter() - started)


def main() -> None:
    import redis

    import migrations
    from genq.broker import make_celery
    from storage.db import session_factory
    from storage.keys import create_key

    tmp = Path(os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="genq-bench-"))
    pg = ls.ensure_postgres(tmp / "pg")
    redis_service = ls.ensure_redis(tmp / "redis")
    broker = f"{redis_service.url}/13"
    redis.Redis.from_url(broker).flushdb()
    started: list[ls.Service] = []
    with ls.fresh_database(pg.url, "genq_bench") as db_url:
        migrations.upgrade(db_url)
        port = ls.free_port()
        settings = Settings(
            database_url=db_url,
            broker_url=broker,
            store="local",
            local_store_dir=str(tmp / "artifacts"),
            public_url=f"http://127.0.0.1:{port}",
            queue="genq.bench",
        )
        with session_factory(db_url)() as s:
            headers = {"Authorization": f"Bearer {create_key(s, 'bench')}"}
        env = settings.to_env()
        raw_env = {"RAW_BROKER_URL": broker, "PYTHONPATH": str(ROOT)}
        os.environ.update(raw_env)
        sys.path.insert(0, str(ROOT / "bench"))
        from raw_celery import app as raw_app

        try:
            api = ls.start_api(env, tmp / "api.log", port=port, workers=2)
            started.append(api)
            # Throughput first, with no consumers running, so workers don't compete for CPU.
            # Alternating rounds, medians: drift on a shared machine hits both sides alike.
            publish_rates, submit_rates = [], []
            for _ in range(ROUNDS):
                publish_rates.append(raw_publish_rate(raw_app))
                submit_rates.append(http_submit_rate(api.url, headers))
            publish_rate = statistics.median(publish_rates)
            submit_rate = statistics.median(submit_rates)
            r = redis.Redis.from_url(broker)
            r.delete("bench.sink", settings.queue)
            with session_factory(db_url)() as s:
                from sqlalchemy import text

                s.execute(text("UPDATE jobs SET status='canceled' WHERE status='queued'"))
                s.commit()

            started.append(ls.start_worker(env, tmp / "worker.log"))
            raw_worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "raw_celery",
                    "worker",
                    "-Q",
                    "bench.raw",
                    "-c",
                    "1",
                    "--loglevel",
                    "WARNING",
                ],
                cwd=ROOT / "bench",
                env={**os.environ, **raw_env},
            )
            started.append(ls.Service(url="", process=raw_worker))
            session = requests.Session()
            wait = {**headers, "Prefer": "wait=30"}

            phases: dict[str, list[float]] = {
                "send_to_insert": [],
                "to_claim": [],
                "claim_to_done": [],
                "done_to_reply": [],
            }

            def genq_once() -> float:
                t, sent = time.perf_counter(), time.time()
                r = session.post(f"{api.url}/v1/jobs", json={"model": "noop"}, headers=wait)
                elapsed, replied = time.perf_counter() - t, time.time()
                job = r.json()
                assert r.status_code == 200 and job["status"] == "succeeded", r.text
                created, started, done = (
                    datetime.fromisoformat(job[k])
                    for k in ("created_at", "started_at", "completed_at")
                )
                phases["send_to_insert"].append(created.timestamp() - sent)
                phases["done_to_reply"].append(replied - done.timestamp())
                phases["to_claim"].append((started - created).total_seconds())
                phases["claim_to_done"].append((done - started).total_seconds())
                return elapsed

            def raw_once() -> float:
                t = time.perf_counter()
                raw_app.send_task("bench.noop", queue="bench.raw").get(timeout=30)
                return time.perf_counter() - t

            for _ in range(10):  # warm both paths
                genq_once(), raw_once()
            genq_lat, raw_lat = [], []
            for _ in range(LATENCY_N):  # interleaved, so drift hits both alike
                genq_lat.append(genq_once())
                raw_lat.append(raw_once())
        finally:
            for service in reversed(started):
                service.stop()
            make_celery(settings).close()
    figures = {
        "genq_p50_ms": round(pct(genq_lat, 0.5) * 1000, 2),
        "genq_p95_ms": round(pct(genq_lat, 0.95) * 1000, 2),
        "raw_p50_ms": round(pct(raw_lat, 0.5) * 1000, 2),
        "raw_p95_ms": round(pct(raw_lat, 0.95) * 1000, 2),
        "latency_ratio": round(statistics.median(genq_lat) / statistics.median(raw_lat), 2),
        "http_submits_per_s": round(submit_rate, 1),
        "raw_publishes_per_s": round(publish_rate, 1),
        "submit_ratio": round(submit_rate / publish_rate, 3),
        # Where genq's latency goes: insert → claimed by the worker → completed.
        **{f"genq_{k}_p50_ms": round(pct(v, 0.5) * 1000, 2) for k, v in phases.items()},
    }
    print(
        f"no-op job, HTTP submit → seen succeeded: p50 {figures['genq_p50_ms']} ms, "
        f"p95 {figures['genq_p95_ms']} ms"
    )
    print(
        f"raw Celery no-op round trip:            p50 {figures['raw_p50_ms']} ms, "
        f"p95 {figures['raw_p95_ms']} ms  → latency_ratio {figures['latency_ratio']}"
    )
    print(
        f"HTTP submits/s {figures['http_submits_per_s']} vs raw publishes/s "
        f"{figures['raw_publishes_per_s']} → submit_ratio {figures['submit_ratio']}"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
