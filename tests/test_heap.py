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
