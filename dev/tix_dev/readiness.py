"""Free ports and waiting until something answers: the one copy the mesh runner, the tests and the benchmarks use.

``wait_until(check)`` polls a check until it holds, failing fast when the process it waits for has died, and
raises :class:`NotReady` (with what it waited for) after the timeout. The checks below are the ones this project
waits on: a TCP port that accepts, an HTTP endpoint that answers, a gRPC server whose health says SERVING.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

LOOPBACK = "127.0.0.1"


class NotReady(RuntimeError):
    """What was waited for did not become ready in time, or its process exited first."""


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the kernel's pick), for a private server of a test or benchmark."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float = 30.0,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.05,
) -> float:
    """Poll ``check`` until it returns true; returns the seconds waited. Raises :class:`NotReady` when ``timeout``
    passes or ``process`` exits first."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise NotReady(f"{what}: the process exited with code {process.returncode}")
        if check():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise NotReady(f"{what}: not ready after {timeout:.0f}s")
        time.sleep(interval)


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def http_status(url: str, timeout: float = 1.0) -> int:
    """The HTTP status of a GET (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


def http_ok(url: str) -> bool:
    return http_status(url) == 200


def http_answers(url: str) -> bool:
    """Any HTTP answer (localstripe says 401 to an unauthenticated call once it is up)."""
    return http_status(url) != 0


def grpc_serving(port: int, service: str = "", host: str = LOOPBACK) -> bool:
    """gRPC health says SERVING for ``service`` ("" is the server as a whole)."""
    try:
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            # Typed Any: the health stubs package leaves out the generated client methods.
            stub: Any = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
