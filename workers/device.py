"""Which device a worker process owns.

Prefork children are numbered 1..N by billiard; child ``i`` takes visible GPU ``(i-1) % n``.
Deployments restrict a worker to its device group with ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import logging

log = logging.getLogger("genq.worker")

_device: str | None = None


def pin_device(requested: str) -> str:
    global _device
    import torch

    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        _device = "cpu"
    else:
        from billiard.process import current_process

        index = max(0, (getattr(current_process(), "index", 1) or 1) - 1)
        ordinal = index % max(1, torch.cuda.device_count())
        torch.cuda.set_device(ordinal)
        _device = f"cuda:{ordinal}"
    log.info("worker process pinned to %s (%d torch threads)", _device, torch.get_num_threads())
    return _device


def current_device(requested: str = "auto") -> str:
    return _device or pin_device(requested)
