"""Child processes of the mesh runner, the tests and the benchmarks: started so they die with their parent, and
stopped politely first."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent_hook() -> Callable[[], None] | None:
    """A pre-exec hook giving the child SIGTERM if its parent dies without stopping it (Linux), so nothing is left
    behind. ``prctl`` is looked up here, in the parent: the hook itself only calls it between fork and exec, where
    loading a library could deadlock on a lock another thread held at fork time."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
