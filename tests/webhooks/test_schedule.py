"""The retry schedule is the Standard Webhooks one, scaled and jittered on request."""

from __future__ import annotations

import random

import pytest

from genq.webhooks.schedule import SCHEDULE_S, honour_retry_after, next_delay


class _Fixed:
    """An rng whose ``uniform`` always returns one end of the range."""

    def __init__(self, end: str):
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return a if self.end == "low" else b


def test_schedule_is_the_spec_one() -> None:
    assert SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


def test_sequence_without_jitter_equals_the_schedule() -> None:
    assert [next_delay(n, jitter=0) for n in range(len(SCHEDULE_S))] == list(SCHEDULE_S)


def test_exhausted_after_every_attempt() -> None:
    assert next_delay(len(SCHEDULE_S) - 1, jitter=0) == 86400
    assert next_delay(len(SCHEDULE_S)) is None
    assert next_delay(len(SCHEDULE_S) + 5) is None


def test_negative_attempts_is_an_error() -> None:
    with pytest.raises(ValueError):
        next_delay(-1)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_jitter_must_be_a_fraction(jitter: float) -> None:
    with pytest.raises(ValueError):
        next_delay(1, jitter=jitter)


def test_jitter_stays_within_bounds() -> None:
    rng = random.Random(7)
    for n, base in enumerate(SCHEDULE_S):
        for _ in range(200):
            delay = next_delay(n, jitter=0.1, rng=rng)
            assert delay is not None
            assert base * 0.9 <= delay <= base * 1.1


def test_jitter_reaches_both_ends() -> None:
    assert next_delay(2, jitter=0.2, rng=_Fixed("low")) == pytest.approx(240)
    assert next_delay(2, jitter=0.2, rng=_Fixed("high")) == pytest.approx(360)


def test_jitter_actually_varies() -> None:
    rng = random.Random(1)
    assert len({next_delay(3, rng=rng) for _ in range(20)}) > 1


def test_the_first_attempt_is_immediate_even_with_jitter() -> None:
    assert next_delay(0, rng=_Fixed("high")) == 0


def test_scale_shrinks_the_schedule() -> None:
    scaled = [next_delay(n, scale=0.001, jitter=0) for n in range(len(SCHEDULE_S))]
    assert scaled == pytest.approx([s * 0.001 for s in SCHEDULE_S])
    assert next_delay(len(SCHEDULE_S), scale=0.001) is None


def test_retry_after_lengthens_but_never_shortens() -> None:
    assert honour_retry_after(5, None) == 5
    assert honour_retry_after(5, 120) == 120
    assert honour_retry_after(300, 120) == 300
    assert honour_retry_after(5, -10) == 5


def test_retry_after_is_capped() -> None:
    assert honour_retry_after(5, 10**9) == 86400
    assert honour_retry_after(5, 10**9, cap_s=600) == 600
    assert honour_retry_after(7200, 10**9, cap_s=600) == 7200
