"""Batches: many jobs submitted in one transaction, followed and canceled together.

A batch stores no status of its own: it is what its jobs' statuses add up to, so it can
never disagree with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from storage import jobs
from storage.db import utcnow
from storage.models import RUNNING, STATUSES, TERMINAL, Batch, Job


def create_batch(
    session: Session,
    owner: str,
    batch_id: str,
    rows: list[dict[str, Any]],
    metadata: dict[str, Any] | None = None,
) -> Batch:
    """Insert the batch and all its jobs (``rows`` from :func:`jobs.job_values`) at once."""
    batch = Batch(
        id=batch_id,
        owner=owner,
        total=len(rows),
        cancel_requested=False,
        metadata_=metadata,
        created_at=utcnow(),
    )
    session.add(batch)
    session.flush()
    jobs.insert_jobs(session, rows)
    session.commit()
    return batch


def get_batch(session: Session, batch_id: str, owner: str) -> Batch | None:
    return session.scalars(
        select(Batch).where(Batch.id == batch_id, Batch.owner == owner)
    ).one_or_none()


def counts(session: Session, batch_id: str) -> tuple[dict[str, int], datetime | None]:
    """Jobs per status, and when the last one finished."""
    found = {s: 0 for s in STATUSES}
    for status, count in session.execute(
        select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status)
    ):
        found[status] = count
    last = session.scalar(select(func.max(Job.completed_at)).where(Job.batch_id == batch_id))
    return found, last


def status(batch: Batch, by_status: dict[str, int]) -> str:
    if sum(by_status[s] for s in TERMINAL) < batch.total:
        return "cancelling" if batch.cancel_requested else "in_progress"
    return "canceled" if batch.cancel_requested else "completed"


def batch_jobs(session: Session, batch_id: str, *, finished_only: bool = False) -> list[Job]:
    query = select(Job).where(Job.batch_id == batch_id).order_by(Job.created_at, Job.id)
    if finished_only:
        query = query.where(Job.status.in_(TERMINAL))
    return list(session.scalars(query))


def cancel_batch(session: Session, batch: Batch) -> None:
    """Cancel every job of the batch: queued ones at once, running ones at their next step."""
    session.execute(update(Batch).where(Batch.id == batch.id).values(cancel_requested=True))
    session.commit()
    ids = session.scalars(
        select(Job.id).where(Job.batch_id == batch.id, Job.status.in_(("queued", RUNNING)))
    ).all()
    for job_id in ids:
        jobs.request_cancel(session, job_id, batch.owner)
    session.expire_all()
