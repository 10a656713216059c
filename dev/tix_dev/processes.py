"""Child processes of the mesh runner, the tests and the benchmarks: started so they die with their parent, and
stopped politely first; and a private ``redis-server``, which tests and benchmarks start instead of sharing one."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

from tix_dev.readiness import free_port, port_open, wait_until


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that the child gets SIGTERM if its parent dies without stopping it (Linux's parent-death
    signal), so nothing is left behind. ``setpriv`` (util-linux) sets the signal and execs the program: the same
    process, no Python between fork and exec. (A ``preexec_fn`` doing it ran Python in the forked child, which
    aborted now and then when the parent had gRPC threads running: redis-server "exited with code -6".)"""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
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


class RedisServer:
    """A private ``redis-server`` on a spare loopback port, without persistence: nothing shared with other runs or
    with ``make up``."""

    def __init__(self, port: int | None = None, *, append_only_dir: str | None = None) -> None:
        """``append_only_dir``: persist with an append-only file there (fsync every second), as a deployment that
        asks for a durable waiting room does; a server started again on the same directory reloads it."""
        self.port = port or free_port()
        self.append_only_dir = append_only_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", self.append_only_dir]
            if self.append_only_dir
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            die_with_parent(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: port_open(self.port), what=f"redis-server on port {self.port}", timeout=timeout,
                       process=self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.process, 5)

    def crash(self) -> None:
        """SIGKILL: no shutdown, no last fsync, as when the node or its container dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
