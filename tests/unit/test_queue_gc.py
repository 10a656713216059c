"""The queue process tunes Python's garbage collector for tens of thousands of streams (queue_svc.server)."""

from __future__ import annotations

import gc

from queue_svc import server


def test_the_queue_process_freezes_its_startup_objects_and_collects_fully_less_often():
    thresholds = gc.get_threshold()
    # From the interpreter's defaults, whatever an earlier test in this process (an in-process queue server) set.
    gc.set_threshold(700, 10, 10)
    try:
        server._tune_garbage_collector()
        assert gc.get_freeze_count() > 0
        young, _, full = gc.get_threshold()
        assert young > 700 * 10
        assert full >= 10
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
