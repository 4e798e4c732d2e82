"""The token bucket: a full burst, then the refill rate, per key; how long to wait when
refused; and the levels the metrics show."""

from __future__ import annotations

import pytest

from serve_apps.rate_limit import TokenBucket, retry_after_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _granted(bucket: TokenBucket, key: str = "a") -> bool:
    return bucket.take(key) == 0.0


def test_a_new_key_gets_a_burst_of_twice_the_rate_then_is_told_how_long_to_wait():
    clock = Clock()
    bucket = TokenBucket(5.0, clock=clock)
    assert [_granted(bucket) for _ in range(10)] == [True] * 10
    assert bucket.take("a") == pytest.approx(0.2)  # one token at 5 a second
    clock.now += 0.15
    assert bucket.take("a") == pytest.approx(0.05)
    assert retry_after_s(0.05) == "1" and retry_after_s(2.2) == "3"


def test_tokens_refill_at_the_rate_and_never_above_the_burst():
    clock = Clock()
    bucket = TokenBucket(5.0, clock=clock)
    while _granted(bucket):
        pass
    clock.now += 0.1  # half a token
    assert not _granted(bucket)
    clock.now += 0.1  # one token in all since empty
    assert _granted(bucket) and not _granted(bucket)
    clock.now += 3600  # an hour idle refills only to the burst
    assert sum(_granted(bucket) for _ in range(20)) == 10


def test_a_refused_request_does_not_spend_the_partial_token():
    clock = Clock()
    bucket = TokenBucket(2.0, clock=clock)
    for _ in range(4):
        assert _granted(bucket)
    for _ in range(2):  # refusals 0.2 s apart (0.4 token each): the level keeps accruing
        clock.now += 0.2
        assert not _granted(bucket)
    clock.now += 0.2  # 0.6 s since empty = 1.2 tokens
    assert _granted(bucket)


def test_keys_have_separate_buckets_and_a_burst_may_be_set():
    clock = Clock()
    bucket = TokenBucket(1.0, burst=3.0, clock=clock)
    assert [_granted(bucket, "a") for _ in range(4)] == [True, True, True, False]
    assert [_granted(bucket, "b") for _ in range(4)] == [True, True, True, False]


def test_levels_count_the_keys_in_use_and_the_empty_ones_and_forget_refilled_ones():
    clock = Clock()
    bucket = TokenBucket(1.0, burst=4.0, clock=clock)
    assert bucket.levels().keys == 0 and bucket.levels().lowest_fraction == 1.0
    for _ in range(4):
        bucket.take("a")
    bucket.take("b")
    levels = bucket.levels()
    assert (levels.keys, levels.empty, levels.lowest_fraction) == (2, 1, 0.0)
    clock.now += 1.5  # "b" is full again and forgotten; "a" holds 1.5 of 4
    levels = bucket.levels()
    assert (levels.keys, levels.empty, levels.lowest_fraction) == (1, 0, pytest.approx(1.5 / 4))
