"""Running one job: claim, load, generate, upload, complete — each step re-checking the row.

The task receives only the job id and asserts the world itself: the claim is a
compare-and-set, progress reports double as cancel checks and lease renewals, and the final
write names this attempt, so a stale or duplicated run can never overwrite a newer one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.orm import Session

from genq import __version__
from genq.notify import Notifier
from genq.settings import Settings
from pipelines.base import GenerationResult, ImageRequest, JobCanceled
from pipelines.registry import Registry, load_registry
from storage import jobs
from storage.db import session_factory
from storage.models import TERMINAL, Job
from storage.objects import ObjectStore, artifact_key, make_store
from workers.cache import get_pipeline
from workers.device import current_device

log = logging.getLogger("genq.worker")
T = TypeVar("T")


class StorageUnavailable(Exception):
    """The object store kept failing after every retry."""


@lru_cache(maxsize=4)
def _registry(path: str) -> Registry:
    return load_registry(path)


@lru_cache(maxsize=4)
def _notifier(url: str) -> Notifier:
    return Notifier(url)


@lru_cache(maxsize=4)
def _store(settings: Settings) -> ObjectStore:
    return make_store(settings)


@dataclass
class Timer:
    stages: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - started, 6)


def with_retries(fn: Callable[[], T], *, tries: int, backoff_s: float, what: str) -> T:
    """Retry a storage call with exponential backoff; transient outages are common."""
    for attempt in range(tries):
        try:
            return fn()
        except Exception as exc:  # minio raises urllib3, socket and S3 errors alike
            if attempt == tries - 1:
                raise StorageUnavailable(f"{what} failed after {tries} tries: {exc}") from exc
            delay = backoff_s * 2**attempt
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def encode_png(image: Any, metadata: dict[str, str]) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in metadata.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def execute_job(job_id: str, settings: Settings) -> str:
    """Run the job with this id if it is ours to run; returns the status it ended in."""
    with session_factory(settings.database_url)() as session:
        job = jobs.claim(
            session, job_id, lease_s=settings.lease_s, max_attempts=settings.max_attempts
        )
        if job is None:
            log.info("job %s: not claimable (duplicate, finished or canceled); skipping", job_id)
            return "skipped"
        outcome = _run_claimed(session, job, settings)
    if outcome in TERMINAL:
        _notifier(settings.broker_url).job_finished(job_id, outcome)
    return outcome


def _run_claimed(session: Session, job: Job, settings: Settings) -> str:
    attempt, timer = job.attempt, Timer()
    metrics: dict[str, Any] = {"queue_s": round(jobs.queue_seconds(job), 6), "load_s": 0.0}
    last_progress: dict[str, Any] = {"step": 0, "total_steps": 0, "phase": "loading"}

    def report(step: int, total: int, phase: str) -> None:
        last_progress.update(step=step, total_steps=total, phase=phase)
        canceled = jobs.report_progress(
            session,
            job.id,
            attempt,
            step=step,
            total_steps=total,
            phase=phase,
            lease_s=settings.lease_s,
        )
        if canceled:
            raise JobCanceled(job.id)

    def finish_metrics() -> dict[str, Any]:
        metrics["stages"] = timer.stages
        metrics["run_s"] = round(sum(v for k, v in timer.stages.items() if k != "load"), 6)
        return metrics

    try:
        spec = _registry(settings.models_file).get(job.model)
        if spec is None:
            jobs.fail(
                session,
                job.id,
                attempt,
                code="unknown_model",
                message=f"model {job.model!r} is not served by this worker",
            )
            return "failed"
        device = current_device(settings.device)
        pipeline, load_s = timer.run("load", lambda: get_pipeline(spec, device))
        metrics["load_s"] = round(load_s, 6)
        result: GenerationResult = timer.run(
            "generate",
            lambda: pipeline(
                _image_request(job), lambda step, total: report(step, total, "denoising")
            ),
        )
        timer.stages.update({f"generate.{k}": round(v, 6) for k, v in result.stages.items()})
        if result.images:
            report(last_progress["total_steps"], last_progress["total_steps"], "uploading")
        artifacts = _store_images(job, result, settings, timer)
        output = {
            "seed": job.seed,
            "model": job.model,
            "images": len(artifacts),
            "genq_version": __version__,
            **result.output,
        }
        progress = {**last_progress, "phase": "done"}
        ok = jobs.complete(
            session,
            job.id,
            attempt,
            output=output,
            metrics=finish_metrics(),
            progress=progress,
            artifacts=artifacts,
        )
        return "succeeded" if ok else "superseded"
    except JobCanceled:
        jobs.finish_canceled(session, job.id, attempt, metrics=finish_metrics())
        return "canceled"
    except jobs.LeaseLost:
        log.warning("job %s attempt %d lost its lease; leaving it to the retry", job.id, attempt)
        return "superseded"
    except SoftTimeLimitExceeded:
        jobs.fail(
            session,
            job.id,
            attempt,
            code="timeout",
            message=f"job exceeded {settings.job_soft_limit_s}s",
            metrics=finish_metrics(),
        )
        return "failed"
    except StorageUnavailable as exc:
        jobs.fail(
            session,
            job.id,
            attempt,
            code="storage_unavailable",
            message=str(exc),
            metrics=finish_metrics(),
        )
        return "failed"
    except Exception as exc:
        log.exception("job %s failed", job.id)
        session.rollback()
        jobs.fail(
            session,
            job.id,
            attempt,
            code="pipeline_error",
            message=f"{type(exc).__name__}: {exc}",
            metrics=finish_metrics(),
        )
        return "failed"


def _image_request(job: Job) -> ImageRequest:
    params = job.input
    return ImageRequest(
        prompt=params.get("prompt", ""),
        negative_prompt=params.get("negative_prompt"),
        width=params.get("width", 0),
        height=params.get("height", 0),
        num_inference_steps=params.get("num_inference_steps", 0),
        guidance_scale=params.get("guidance_scale", 0.0),
        num_images=params.get("num_images", 1),
        seed=job.seed,
    )


def _store_images(
    job: Job, result: GenerationResult, settings: Settings, timer: Timer
) -> list[jobs.StoredArtifact]:
    store = _store(settings)
    stored = []
    for n, image in enumerate(result.images):
        metadata = {
            "genq:model": job.model,
            "genq:seed": str(job.seed),
            "genq:job_id": job.id,
            "genq:version": __version__,
            "parameters": repr(sorted(job.input.items())),
        }
        data = timer.run("encode", lambda i=image, m=metadata: encode_png(i, m))
        key = artifact_key(job.owner, job.id, n)
        timer.run(
            "upload",
            lambda key=key, data=data: with_retries(
                lambda: store.put(key, data, "image/png"),
                tries=settings.storage_retries,
                backoff_s=settings.storage_backoff_s,
                what=f"upload of {key}",
            ),
        )
        stored.append(
            jobs.StoredArtifact(
                n=n,
                key=key,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                content_type="image/png",
                width=image.width,
                height=image.height,
            )
        )
    return stored
