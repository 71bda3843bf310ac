"""Running a job: claim, load, generate, upload, complete — each step re-checking the row.

The task receives only the job id and asserts the world itself: the claim is a
compare-and-set, progress reports double as cancel checks and lease renewals, and the final
write names this attempt, so a stale or duplicated run can never overwrite a newer one.

Text jobs that allow it (``input.batch``) take compatible queued jobs of the same model
along, claiming each by the same compare-and-set, and decode them in one forward per step;
the peers' own tasks later find nothing to claim.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Row
from sqlalchemy.orm import Session

from genq import __version__
from genq.broker import kick_webhooks
from genq.notify import Notifier
from genq.settings import Settings
from pipelines.base import GenerationResult, ImageRequest, JobCanceled, TextRequest
from pipelines.registry import ModelSpec, Registry, load_registry
from pipelines.text_params import DECODING_PARAMS
from storage import jobs
from storage.db import session_factory
from storage.models import TERMINAL
from storage.objects import ObjectStore, make_store
from workers.artifacts import StorageUnavailable, encode_png, provenance, upload, with_retries
from workers.cache import ModelUnhealthy, get_pipeline
from workers.device import current_device

log = logging.getLogger("genq.worker")
T = TypeVar("T")

__all__ = ["execute_job", "with_retries", "StorageUnavailable"]


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
            elapsed = time.perf_counter() - started
            self.stages[name] = round(self.stages.get(name, 0.0) + elapsed, 6)


@dataclass
class JobRun:
    """One claimed attempt of one job: its progress reports and final transitions."""

    session: Session
    job: Row
    settings: Settings
    timer: Timer = field(default_factory=Timer)
    metrics: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(
        default_factory=lambda: {"step": 0, "total_steps": 0, "phase": "loading"}
    )
    canceled: bool = False

    def __post_init__(self) -> None:
        self.metrics = {"queue_s": round(jobs.queue_seconds(self.job), 6), "load_s": 0.0}

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def report(self, step: int, total: int, phase: str, text: str | None = None) -> None:
        """Record progress; raises JobCanceled once the client asked to cancel."""
        self.progress.update(step=step, total_steps=total, phase=phase)
        self.canceled = jobs.report_progress(
            self.session,
            self.job.id,
            self.attempt,
            step=step,
            total_steps=total,
            phase=phase,
            lease_s=self.settings.lease_s,
            extra={"text": text} if text is not None else None,
            progress_webhook_interval_s=self.settings.webhook_progress_interval_s,
        )
        if self.canceled:
            raise JobCanceled(self.job.id)

    def final_metrics(self) -> dict[str, Any]:
        stages = self.timer.stages
        self.metrics["stages"] = stages
        # Top-level stages only: "generate.denoising" is already inside "generate".
        top = (v for k, v in stages.items() if k != "load" and "." not in k)
        self.metrics["run_s"] = round(sum(top), 6)
        return self.metrics

    def complete(self, output: dict[str, Any], artifacts: list[jobs.StoredArtifact]) -> str:
        ok = jobs.complete(
            self.session,
            self.job.id,
            self.attempt,
            output={
                "seed": self.job.seed,
                "model": self.job.model,
                "genq_version": __version__,
                **output,
            },
            metrics=self.final_metrics(),
            progress={**self.progress, "phase": "done"},
            artifacts=artifacts,
        )
        return "succeeded" if ok else "superseded"

    def fail(self, code: str, message: str) -> str:
        self.session.rollback()
        ok = jobs.fail(
            self.session,
            self.job.id,
            self.attempt,
            code=code,
            message=message,
            metrics=self.final_metrics(),
        )
        return "failed" if ok else "superseded"

    def cancel(self) -> str:
        ok = jobs.finish_canceled(
            self.session, self.job.id, self.attempt, metrics=self.final_metrics()
        )
        return "canceled" if ok else "superseded"


def execute_job(job_id: str, settings: Settings) -> str:
    """Run the job with this id if it is ours to run; returns the status it ended in."""
    with session_factory(settings.database_url)() as session:
        job = jobs.claim(
            session, job_id, lease_s=settings.lease_s, max_attempts=settings.max_attempts
        )
        if job is None:
            log.info("job %s: not claimable (duplicate, finished or canceled); skipping", job_id)
            return "skipped"
        if job.webhook_url:
            _kick_webhooks()  # the start event's delivery, if subscribed
        runs = [JobRun(session, job, settings)]
        with lease_kept(settings, job.id, job.attempt):
            outcomes = _guarded(runs, lambda: _run(runs, settings))
    for run, outcome in zip(runs, outcomes, strict=True):
        if outcome in TERMINAL:
            _notifier(settings.broker_url).job_finished(run.job.id, outcome)
        if run.job.webhook_url:
            _kick_webhooks()
    return outcomes[0]


def _kick_webhooks() -> None:
    from workers.celery import app

    kick_webhooks(app)


class _LeaseKeeper:
    """One side thread per worker process renewing the leases of the jobs it runs.

    A cold model load or a first compiled step may outlast a lease that only progress
    reports would renew. Registering a job is a dict update, so short jobs pay nothing for
    it. A hung process is still caught: Celery's hard time limit kills it, then its leases
    run out.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, tuple[Settings, int]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, settings: Settings, job_id: str, attempt: int) -> None:
        with self._lock:
            self._jobs[job_id] = (settings, attempt)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="genq-leases", daemon=True)
                self._thread.start()

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                held = list(self._jobs.items())
            shortest = min((settings.lease_s for _, (settings, _) in held), default=30.0)
            time.sleep(shortest / 3)
            for job_id, (settings, attempt) in held:
                with self._lock:
                    if job_id not in self._jobs:
                        continue  # it finished while we slept
                try:
                    with session_factory(settings.database_url)() as session:
                        jobs.extend_lease(session, job_id, attempt, lease_s=settings.lease_s)
                except Exception as exc:  # the next round tries again
                    log.warning("could not renew the lease of job %s: %s", job_id, exc)


_leases = _LeaseKeeper()


@contextmanager
def lease_kept(settings: Settings, job_id: str, attempt: int) -> Iterator[None]:
    """Keep this attempt's lease alive while the block runs (see :class:`_LeaseKeeper`)."""
    _leases.add(settings, job_id, attempt)
    try:
        yield
    finally:
        _leases.remove(job_id)


def _guarded(runs: list[JobRun], body: Callable[[], list[str]]) -> list[str]:
    """Run ``body``; turn what it raises into each run's final status."""
    first = runs[0]
    try:
        return body()
    except JobCanceled:
        return [run.cancel() for run in runs]
    except jobs.LeaseLost:
        log.warning(
            "job %s attempt %d lost its lease; leaving it to the retry", first.job.id, first.attempt
        )
        return ["superseded"] * len(runs)
    except SoftTimeLimitExceeded:
        limit = first.settings.job_soft_limit_s
        return [run.fail("timeout", f"job exceeded {limit}s") for run in runs]
    except StorageUnavailable as exc:
        return [run.fail("storage_unavailable", str(exc)) for run in runs]
    except ModelUnhealthy as exc:
        return [run.fail("model_unhealthy", str(exc)) for run in runs]
    except Exception as exc:
        log.exception("job %s failed", first.job.id)
        return [run.fail("pipeline_error", f"{type(exc).__name__}: {exc}") for run in runs]


def _run(runs: list[JobRun], settings: Settings) -> list[str]:
    first = runs[0]
    spec = _registry(settings.models_file).get(first.job.model)
    if spec is None:
        return [
            first.fail("unknown_model", f"model {first.job.model!r} is not served by this worker")
        ]
    pipeline, load_s = first.timer.run(
        "load", lambda: get_pipeline(spec, current_device(settings.device))
    )
    first.metrics["load_s"] = round(load_s, 6)
    if first.job.kind == "text":
        if first.job.input.get("batch") and spec.limits.max_batch > 1:
            runs.extend(_claim_peers(first, spec))
        if len(runs) > 1:
            return _run_text_batch(runs, pipeline, settings)
        return [_run_text(first, pipeline, settings)]
    return [_run_image(first, pipeline, settings)]


def _run_image(run: JobRun, pipeline: Any, settings: Settings) -> str:
    job, timer = run.job, run.timer
    result: GenerationResult = timer.run(
        "generate",
        lambda: pipeline(_image_request(job, settings), lambda s, n: run.report(s, n, "denoising")),
    )
    timer.stages.update({f"generate.{k}": round(v, 6) for k, v in result.stages.items()})
    if result.images:
        run.report(run.progress["total_steps"], run.progress["total_steps"], "uploading")
    store, artifacts = _store(settings), []
    for n, image in enumerate(result.images):
        data = timer.run("encode", lambda i=image: encode_png(i, provenance(job, result.output)))
        artifacts.append(
            timer.run(
                "upload",
                lambda n=n, d=data, i=image: upload(
                    store, settings, job, n, d, "image/png", "png", (i.width, i.height)
                ),
            )
        )
    made = {
        k: job.input.get(k)
        for k in ("num_inference_steps", "guidance_scale", "strength")
        if job.input.get(k) is not None
    }
    return run.complete({"images": len(artifacts), **made, **result.output}, artifacts)


def _run_text(run: JobRun, pipeline: Any, settings: Settings) -> str:
    result: GenerationResult = run.timer.run(
        "generate",
        lambda: pipeline(
            _text_request(run.job),
            lambda s, n: run.report(s, n, "denoising"),
            lambda b, nb, text: run.report(
                run.progress["step"], run.progress["total_steps"], f"block {b}/{nb}", text
            ),
        ),
    )
    return _finish_text(run, result, settings, batch_size=1)


def _finish_text(run: JobRun, result: GenerationResult, settings: Settings, batch_size: int) -> str:
    run.timer.stages.update({f"generate.{k}": v for k, v in result.stages.items()})
    text = result.output["text"]
    artifact = run.timer.run(
        "upload",
        lambda: upload(
            _store(settings),
            settings,
            run.job,
            0,
            text.encode(),
            "text/plain; charset=utf-8",
            "txt",
        ),
    )
    run.metrics["forwards"] = result.output["forwards"]
    run.metrics["forwards_per_token"] = result.output["forwards_per_token"]
    run.metrics["batch_size"] = batch_size
    return run.complete({**result.output}, [artifact])


def _claim_peers(first: JobRun, spec: ModelSpec) -> list[JobRun]:
    """Claim queued text jobs that can share this job's forwards."""
    wanted = {k: first.job.input.get(k) for k in DECODING_PARAMS}
    peers: list[JobRun] = []
    for candidate in jobs.queued_of_model(first.session, first.job.model, limit=64):
        if len(peers) + 1 >= spec.limits.max_batch:
            break
        params = candidate.input
        if candidate.id == first.job.id or not params.get("batch"):
            continue
        if any(params.get(k) != v for k, v in wanted.items()):
            continue
        claimed = jobs.claim(
            first.session,
            candidate.id,
            lease_s=first.settings.lease_s,
            max_attempts=first.settings.max_attempts,
        )
        if claimed is not None:
            peers.append(JobRun(first.session, claimed, first.settings))
    return peers


def _run_text_batch(runs: list[JobRun], pipeline: Any, settings: Settings) -> list[str]:
    """Decode every run's request in one batch; a canceled run is dropped from the results."""
    live = set(range(len(runs)))

    def on_step(step: int, total: int) -> None:
        for i in sorted(live):
            try:
                runs[i].report(step, total, "denoising")
            except JobCanceled:
                live.discard(i)
        if not live:
            raise JobCanceled("every job of the batch was canceled")

    results = runs[0].timer.run(
        "generate", lambda: pipeline.generate_batch([_text_request(r.job) for r in runs], on_step)
    )
    outcomes = []
    for i, (run, result) in enumerate(zip(runs, results, strict=True)):
        if i not in live:
            outcomes.append(run.cancel())
            continue
        run.timer.stages.setdefault("generate", runs[0].timer.stages["generate"])
        outcomes.append(_finish_text(run, result, settings, batch_size=len(runs)))
    return outcomes


def _image_request(job: Row, settings: Settings) -> ImageRequest:
    params = job.input
    image = None
    if params.get("image_key"):  # image-to-image: the input image stored at submit
        from PIL import Image

        data = with_retries(
            lambda: _store(settings).get(params["image_key"]),
            tries=settings.storage_retries,
            backoff_s=settings.storage_backoff_s,
            what=f"download of {params['image_key']}",
        )
        image = Image.open(io.BytesIO(data)).convert("RGB")
    return ImageRequest(
        scheduler=params.get("scheduler"),
        image=image,
        strength=params.get("strength", 0.8),
        prompt=params.get("prompt", ""),
        negative_prompt=params.get("negative_prompt"),
        width=params.get("width", 0),
        height=params.get("height", 0),
        num_inference_steps=params.get("num_inference_steps", 0),
        guidance_scale=params.get("guidance_scale", 0.0),
        num_images=params.get("num_images", 1),
        seed=job.seed,
    )


def _text_request(job: Row) -> TextRequest:
    params = job.input
    return TextRequest(
        prompt=params["prompt"],
        gen_length=params["gen_length"],
        block_length=params["block_length"],
        steps=params["steps"],
        temperature=params["temperature"],
        cfg_scale=params["cfg_scale"],
        remasking=params["remasking"],
        threshold=params.get("threshold"),
        seed=job.seed,
        messages=tuple(params["messages"]) if params.get("messages") else None,
    )
