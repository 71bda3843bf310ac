"""Webhook delivery pieces that know nothing of the database or Celery.

``signing`` makes Standard Webhooks signatures, ``ssrf`` vets a URL and pins its addresses,
``sender`` POSTs to those addresses, and ``schedule`` says when to try again. The webhook task
in ``workers/`` puts them together.
"""

from genq.webhooks.schedule import SCHEDULE_S, honour_retry_after, next_delay
from genq.webhooks.sender import Outcome, send
from genq.webhooks.signing import headers, new_message_id, new_secret, sign, verify
from genq.webhooks.ssrf import Target, UnsafeURL, check_url

__all__ = [
    "SCHEDULE_S",
    "Outcome",
    "Target",
    "UnsafeURL",
    "check_url",
    "headers",
    "honour_retry_after",
    "new_message_id",
    "new_secret",
    "next_delay",
    "send",
    "sign",
    "verify",
]
