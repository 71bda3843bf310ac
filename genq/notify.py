"""Finished-job notifications over Redis pub/sub.

Workers publish when a job reaches a final status; ``Prefer: wait`` requests listen instead
of polling the database, so a waiting client hears of completion at once. A lost
notification only costs latency: waiters re-read the database before and after.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

import redis

log = logging.getLogger("genq.notify")


def channel(job_id: str) -> str:
    return f"genq:job:{job_id}:finished"


class Notifier:
    def __init__(self, url: str):
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)

    def job_finished(self, job_id: str, status: str) -> None:
        try:
            self._redis.publish(channel(job_id), status)
        except redis.RedisError as exc:  # waiters fall back to their deadline
            log.warning("could not announce job %s finished: %s", job_id, exc)

    @contextlib.contextmanager
    def listening(self, job_id: str) -> Iterator[Callable[[float], bool]]:
        """Subscribe first, then let the caller check the row and wait for the message."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel(job_id))

            def wait(seconds: float) -> bool:
                deadline = time.monotonic() + seconds
                while (left := deadline - time.monotonic()) > 0:
                    if pubsub.get_message(timeout=min(left, 1.0)) is not None:
                        return True
                return False

            yield wait
        finally:
            pubsub.close()
