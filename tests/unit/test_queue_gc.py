"""The queue process tunes Python's garbage collector for tens of thousands of streams (queue_svc.server)."""

from __future__ import annotations

import gc

from queue_svc import server


def test_the_queue_process_freezes_its_startup_objects_and_collects_fully_less_often():
    thresholds = gc.get_threshold()
    try:
        server._tune_garbage_collector()
        assert gc.get_freeze_count() > 0
        young, _, full = gc.get_threshold()
        assert young > thresholds[0] * 10
        assert full >= thresholds[2]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
