"""The job state machine: every transition is one compare-and-set UPDATE.

    queued → running → succeeded | failed | canceled
    queued → canceled
    running → queued        (only when the worker's lease expired: the reconciler retries it)

A transition names the status (and, for a worker, the attempt) it expects; when the row is no
longer in that state the UPDATE matches nothing and the caller learns it lost. So a
duplicated or redelivered task, a late worker after a retry, or a cancel racing completion
all change nothing they should not. Each transition writes its event in the same
transaction, so the event log never disagrees with the row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import webhooks
from storage.db import as_utc, utcnow
from storage.models import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Artifact,
    Job,
    JobEvent,
)
from storage.webhooks import Subscription

# Core insert on the table, compiled once: the ORM's per-call statement building showed up as
# a third of submit time.
_INSERT_JOB = Job.__table__.insert()
_INSERT_EVENT = JobEvent.__table__.insert()
_jobs = Job.__table__

# The worker's transitions, built once and executed with parameters: these run several times
# per job, and building SQLAlchemy expressions per call cost more than the round trips.
_CLAIM = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("p_id"),
        _jobs.c.attempt < bindparam("p_max_attempts"),
        or_(
            _jobs.c.status == QUEUED,
            and_(_jobs.c.status == RUNNING, _jobs.c.lease_until < bindparam("p_now")),
        ),
    )
    .values(
        status=RUNNING,
        attempt=_jobs.c.attempt + 1,
        lease_until=bindparam("p_lease_until", type_=_jobs.c.lease_until.type),
        started_at=func.coalesce(_jobs.c.started_at, bindparam("p_now")),
        progress=bindparam("p_progress", type_=_jobs.c.progress.type),
    )
    .returning(*_jobs.c)
)
_PROGRESS = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("p_id"),
        _jobs.c.status == RUNNING,
        _jobs.c.attempt == bindparam("p_attempt"),
    )
    .values(
        progress=bindparam("p_progress", type_=_jobs.c.progress.type),
        lease_until=bindparam("p_lease_until", type_=_jobs.c.lease_until.type),
    )
    .returning(
        _jobs.c.cancel_requested,
        _jobs.c.owner,
        _jobs.c.webhook_url,
        _jobs.c.webhook_events,
        _jobs.c.progress_webhook_at,
    )
)
# The columns a transition returns so it can enqueue webhook deliveries.
_SUBSCRIPTION = (_jobs.c.id, _jobs.c.owner, _jobs.c.webhook_url, _jobs.c.webhook_events)


def new_job_id() -> str:
    return str(uuid.uuid4())


def _event(
    session: Session,
    job_id: str,
    type_: str,
    data: dict[str, Any],
    now: datetime,
    sub: Subscription | None = None,
) -> None:
    """Record an event, and in the same transaction its webhook delivery if subscribed."""
    values = {"job_id": job_id, "type": type_, "data": data, "created_at": now}
    if sub is None or not sub.wants(type_):
        session.execute(_INSERT_EVENT, values)
        return
    event_id = session.execute(_INSERT_EVENT.returning(JobEvent.__table__.c.id), values).scalar()
    webhooks.enqueue(session, job_id, sub, type_, event_id, now)


# --- submit -------------------------------------------------------------------------------


def job_values(
    *,
    owner: str,
    kind: str,
    model: str,
    input: dict[str, Any],
    seed: int,
    queue: str,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    webhook_url: str | None = None,
    webhook_events: list[str] | None = None,
    job_id: str | None = None,
    batch_id: str | None = None,
    custom_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The columns of a new queued job."""
    now = now or utcnow()
    return dict(
        id=job_id or new_job_id(),
        owner=owner,
        kind=kind,
        model=model,
        status=QUEUED,
        input=input,
        seed=seed,
        queue=queue,
        attempt=0,
        cancel_requested=False,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        webhook_url=webhook_url,
        webhook_events=webhook_events if webhook_url else None,
        batch_id=batch_id,
        custom_id=custom_id,
        created_at=now,
        enqueued_at=now,
    )


def insert_jobs(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert many queued jobs in the caller's transaction (one executemany)."""
    session.execute(_INSERT_JOB, rows)


def create_job(session: Session, **fields: Any) -> tuple[Job, bool]:
    """Insert a queued job (fields as :func:`job_values`); returns ``(job, created)``.

    One INSERT, no event row: creation is not a transition (``created_at`` records it), and
    this is the hot path of every submit. With an idempotency key this owner already used,
    nothing is inserted and the earlier job is returned with ``created=False``; the caller
    compares ``request_hash``.
    """
    values = job_values(**fields)
    owner, idempotency_key = values["owner"], values["idempotency_key"]
    try:
        # One statement needs no transaction around it: in autocommit it is one round trip
        # instead of three (BEGIN, INSERT, COMMIT).
        with session.get_bind().connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(_INSERT_JOB, values)
    except IntegrityError:
        session.rollback()
        if idempotency_key is None:
            raise
        return by_idempotency_key(session, owner, idempotency_key), False
    # A transient object with the inserted values: rendering it needs no second query.
    return Job(
        **values,
        output=None,
        error=None,
        progress=None,
        metrics=None,
        lease_until=None,
        started_at=None,
        completed_at=None,
        progress_webhook_at=None,
    ), True


# --- worker transitions -------------------------------------------------------------------


def claim(session: Session, job_id: str, *, lease_s: float, max_attempts: int) -> Row | None:
    """Take the job for a new attempt, or return None when it is not ours to run.

    A queued job, or a running one whose lease expired (its worker was lost and the broker
    redelivered the task), is claimed; anything else (running elsewhere, finished, canceled,
    out of attempts) leaves the row untouched. Returns the claimed row (a Core row with the
    job's columns as attributes).
    """
    now = utcnow()
    job = session.execute(
        _CLAIM,
        {
            "p_id": job_id,
            "p_max_attempts": max_attempts,
            "p_now": now,
            "p_lease_until": now + timedelta(seconds=lease_s),
            "p_progress": {"step": 0, "total_steps": 0, "phase": "loading"},
        },
    ).one_or_none()
    if job is None:
        session.rollback()
        return None
    _event(
        session,
        job_id,
        RUNNING,
        {"status": RUNNING, "attempt": job.attempt},
        now,
        Subscription.of(job),
    )
    session.commit()
    return job


class LeaseLost(Exception):
    """The job is no longer this attempt's: it was retried elsewhere or finished."""


def report_progress(
    session: Session,
    job_id: str,
    attempt: int,
    *,
    step: int,
    total_steps: int,
    phase: str,
    lease_s: float,
    extra: dict[str, Any] | None = None,
    progress_webhook_interval_s: float = 5.0,
) -> bool:
    """Record progress and extend the lease; returns whether a cancel was requested.

    One round trip both reports and reads the cancel flag, so checking for cancel every
    denoising step costs nothing extra. Raises :class:`LeaseLost` when the attempt is stale.
    """
    now = utcnow()
    progress = {"step": step, "total_steps": total_steps, "phase": phase}
    row = session.execute(
        _PROGRESS,
        {
            "p_id": job_id,
            "p_attempt": attempt,
            "p_progress": progress,
            "p_lease_until": now + timedelta(seconds=lease_s),
        },
    ).one_or_none()
    if row is None:
        session.rollback()
        raise LeaseLost(job_id)
    data = {**progress, **(extra or {})}
    sub = Subscription.of(row)
    if sub is not None and sub.wants("progress"):
        last = as_utc(sub.progress_webhook_at)
        if last is not None and (now - last).total_seconds() < progress_webhook_interval_s:
            sub = None  # throttled: the event is stored, the webhook skipped
        else:
            session.execute(
                update(_jobs).where(_jobs.c.id == job_id).values(progress_webhook_at=now)
            )
    _event(session, job_id, "progress", data, now, sub)
    session.commit()
    return bool(row.cancel_requested)


def extend_lease(session: Session, job_id: str, attempt: int, *, lease_s: float) -> bool:
    """Keep this attempt's lease alive; False once the job is no longer this attempt's."""
    row = session.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _jobs.c.status == RUNNING, _jobs.c.attempt == attempt)
        .values(lease_until=utcnow() + timedelta(seconds=lease_s))
        .returning(_jobs.c.id)
    ).one_or_none()
    session.commit()
    return row is not None


@dataclass(frozen=True)
class StoredArtifact:
    n: int
    key: str
    sha256: str
    size: int
    content_type: str
    width: int | None = None
    height: int | None = None


def _finish(
    session: Session,
    job_id: str,
    attempt: int,
    status: str,
    event: dict[str, Any],
    **values: Any,
) -> bool:
    now = utcnow()
    row = session.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _jobs.c.status == RUNNING, _jobs.c.attempt == attempt)
        .values(status=status, completed_at=now, lease_until=None, **values)
        .returning(*_SUBSCRIPTION)
    ).one_or_none()
    if row is None:
        session.rollback()
        return False
    _event(session, job_id, status, {"status": status, **event}, now, Subscription.of(row))
    return True


def complete(
    session: Session,
    job_id: str,
    attempt: int,
    *,
    output: dict[str, Any],
    metrics: dict[str, Any],
    progress: dict[str, Any],
    artifacts: list[StoredArtifact],
) -> bool:
    """Mark this attempt succeeded and record its artifacts, atomically."""
    if not _finish(
        session, job_id, attempt, SUCCEEDED, {}, output=output, metrics=metrics, progress=progress
    ):
        return False
    if artifacts:
        now = utcnow()
        session.execute(
            Artifact.__table__.insert(),
            [{"job_id": job_id, "created_at": now, **a.__dict__} for a in artifacts],
        )
    session.commit()
    return True


def fail(
    session: Session,
    job_id: str,
    attempt: int,
    *,
    code: str,
    message: str,
    metrics: dict[str, Any] | None = None,
) -> bool:
    error = {"code": code, "message": message}
    ok = _finish(session, job_id, attempt, FAILED, {"error": error}, error=error, metrics=metrics)
    if ok:
        session.commit()
    return ok


def finish_canceled(
    session: Session, job_id: str, attempt: int, *, metrics: dict[str, Any] | None = None
) -> bool:
    ok = _finish(session, job_id, attempt, CANCELED, {}, metrics=metrics)
    if ok:
        session.commit()
    return ok


# --- client transitions -------------------------------------------------------------------


def request_cancel(session: Session, job_id: str, owner: str) -> Job | None:
    """Cancel a queued job at once; flag a running one for its worker's next step.

    Returns the job as it stands afterwards (None when the owner has no such job).
    """
    now = utcnow()
    done = session.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _jobs.c.owner == owner, _jobs.c.status == QUEUED)
        .values(status=CANCELED, cancel_requested=True, completed_at=now)
        .returning(*_SUBSCRIPTION)
    ).one_or_none()
    if done is not None:
        _event(session, job_id, CANCELED, {"status": CANCELED}, now, Subscription.of(done))
    else:
        flagged = session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.owner == owner,
                Job.status == RUNNING,
                Job.cancel_requested.is_(False),
            )
            .values(cancel_requested=True)
            .returning(Job.id)
        ).one_or_none()
        if flagged is not None:
            _event(session, job_id, "cancel_requested", {"status": RUNNING}, now)
    session.commit()
    session.expire_all()  # the UPDATEs above bypassed the identity map
    return get_job(session, job_id, owner)


# --- reads --------------------------------------------------------------------------------


def by_idempotency_key(session: Session, owner: str, key: str) -> Job | None:
    return session.scalars(
        select(Job).where(Job.owner == owner, Job.idempotency_key == key)
    ).one_or_none()


def get_job(session: Session, job_id: str, owner: str | None = None) -> Job | None:
    query = select(Job).where(Job.id == job_id)
    if owner is not None:
        query = query.where(Job.owner == owner)
    return session.scalars(query).one_or_none()


def queued_of_model(session: Session, model: str, *, limit: int) -> list[Job]:
    """Oldest queued jobs of a model: candidates to share a batch."""
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == QUEUED, Job.model == model, Job.cancel_requested.is_(False))
            .order_by(Job.created_at)
            .limit(limit)
        )
    )


def artifacts_of(session: Session, job_id: str) -> list[Artifact]:
    return list(
        session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.n))
    )


def list_jobs(
    session: Session,
    owner: str,
    *,
    limit: int,
    status: str | None = None,
    model: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
) -> list[Job]:
    """Newest first; ``after`` is the (created_at, id) of the previous page's last job."""
    query = select(Job).where(Job.owner == owner)
    if status:
        query = query.where(Job.status == status)
    if model:
        query = query.where(Job.model == model)
    if created_after:
        query = query.where(Job.created_at >= created_after)
    if created_before:
        query = query.where(Job.created_at < created_before)
    if after:
        at, last_id = after
        query = query.where(or_(Job.created_at < at, and_(Job.created_at == at, Job.id < last_id)))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    return list(session.scalars(query))


def events_of(session: Session, job_id: str, after_id: int = 0) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
            .order_by(JobEvent.id)
        )
    )


# --- reconciler ---------------------------------------------------------------------------


@dataclass
class Reconciled:
    republish: list[tuple[str, str]]  # (job id, queue)
    requeued: int = 0
    failed: int = 0
    canceled: int = 0


def reconcile(session: Session, *, republish_after_s: float, max_attempts: int) -> Reconciled:
    """Return expired leases to the queue (or fail them past the attempt cap) and pick the
    queued jobs whose task was never published, or was lost, for republishing."""
    now = utcnow()
    result = Reconciled(republish=[])
    expired = list(
        session.scalars(
            select(Job)
            .where(Job.status == RUNNING, Job.lease_until < now)
            .with_for_update(skip_locked=True)
        )
    )
    for job in expired:
        if job.cancel_requested:  # its client no longer wants it: no reason to run it again
            _finish(session, job.id, job.attempt, CANCELED, {"reason": "lease_expired"})
            result.canceled += 1
            continue
        if job.attempt >= max_attempts:
            _finish(
                session,
                job.id,
                job.attempt,
                FAILED,
                {"error": {"code": "worker_lost"}},
                error={
                    "code": "worker_lost",
                    "message": f"the worker was lost {job.attempt} times; giving up",
                },
            )
            result.failed += 1
            continue
        moved = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == RUNNING, Job.attempt == job.attempt)
            .values(status=QUEUED, lease_until=None, enqueued_at=now)
            .returning(Job.id)
        ).one_or_none()
        if moved is not None:
            _event(session, job.id, QUEUED, {"status": QUEUED, "reason": "lease_expired"}, now)
            result.requeued += 1
            result.republish.append((job.id, job.queue))
    # A queued job may just be waiting behind a long backlog, its task still in the broker:
    # republish it only once it has waited longer than it had already waited when last
    # published, so the gaps double (5 min, 10, 20, ...) and a backlog is not multiplied.
    stale = now - timedelta(seconds=republish_after_s)
    candidates = session.execute(
        select(Job.id, Job.created_at, Job.enqueued_at).where(
            Job.status == QUEUED, Job.enqueued_at < stale
        )
    ).all()
    due = [
        r.id
        for r in candidates
        if now - as_utc(r.enqueued_at) > as_utc(r.enqueued_at) - as_utc(r.created_at)
    ]
    if due:
        rows = session.execute(
            update(Job)
            .where(Job.id.in_(due), Job.status == QUEUED)
            .values(enqueued_at=now)
            .returning(Job.id, Job.queue)
        ).all()
        result.republish.extend((r[0], r[1]) for r in rows)
    session.commit()
    return result


def queue_seconds(job: Job) -> float:
    started, created = as_utc(job.started_at), as_utc(job.created_at)
    if started is None or created is None:
        return 0.0
    return max(0.0, (started - created).total_seconds())
