"""serve_apps.heap: settling collects today's garbage and freezes what survives."""

from __future__ import annotations

import gc
import weakref

import pytest

from serve_apps import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()


def test_settle_collects_cycles_and_freezes_the_survivors(unfrozen):
    garbage, kept = _Node(), _Node()
    gone = weakref.ref(garbage)
    del garbage
    heap.settle()
    assert gone() is None  # the cycle was collected before the freeze
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(kept)
    survivor = weakref.ref(kept)
    kept.me = None
    del kept
    assert survivor() is None  # a frozen object is still freed by reference counting


@pytest.fixture
def default_thresholds():
    """CPython's thresholds for the test (a partition built by an earlier test in this
    process raised them), this process's again afterwards."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_short_lived_garbage_no_longer_starts_collections(default_thresholds):
    passes = []

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            passes.append(info["generation"])

    def churn() -> None:  # what a request leaves: many young objects, most freed at once
        kept = []
        for k in range(20_000):
            kept.append({"k": k})
            if len(kept) > heap.YOUNG_THRESHOLD // 4:
                kept.clear()

    gc.callbacks.append(count)
    try:
        gc.collect()
        passes.clear()
        churn()
        default = len(passes)
        heap.collect_on_schedule()
        gc.collect()
        passes.clear()
        churn()
        scheduled = len(passes)
    finally:
        gc.callbacks.remove(count)
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    assert default >= 5 and scheduled == 0
