"""The per-credential token bucket: a full burst, then the refill rate, per key."""

from __future__ import annotations

from serve_apps.rate_limit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_credential_gets_a_burst_of_twice_the_rate_then_is_refused():
    clock = Clock()
    bucket = TokenBucket(5.0, clock=clock)
    assert [bucket.take("a") for _ in range(10)] == [True] * 10
    assert not bucket.take("a")


def test_tokens_refill_at_the_rate_and_never_above_the_burst():
    clock = Clock()
    bucket = TokenBucket(5.0, clock=clock)
    while bucket.take("a"):
        pass
    clock.now += 0.1  # half a token
    assert not bucket.take("a")
    clock.now += 0.1  # one token in all since empty
    assert bucket.take("a") and not bucket.take("a")
    clock.now += 3600  # an hour idle refills only to the burst
    assert sum(bucket.take("a") for _ in range(20)) == 10


def test_a_refused_request_does_not_spend_the_partial_token():
    clock = Clock()
    bucket = TokenBucket(2.0, clock=clock)
    for _ in range(4):
        assert bucket.take("a")
    for _ in range(2):  # refusals 0.2 s apart (0.4 token each): the level keeps accruing
        clock.now += 0.2
        assert not bucket.take("a")
    clock.now += 0.2  # 0.6 s since empty = 1.2 tokens
    assert bucket.take("a")


def test_credentials_have_separate_buckets():
    clock = Clock()
    bucket = TokenBucket(1.0, clock=clock)
    assert bucket.take("a") and bucket.take("a") and not bucket.take("a")
    assert bucket.take("b") and bucket.take("b") and not bucket.take("b")
