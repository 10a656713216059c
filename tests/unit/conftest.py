"""The unit tier: pure code, no process and no network. Starting a process or connecting a socket here fails the
test; such a test belongs in tests/integration (real PostgreSQL, Redis, localstripe, kubectl) or tests/e2e."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable

import pytest


def _refuse(what: str) -> Callable[..., None]:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise AssertionError(f"a unit test must not {what}: move it to tests/integration")

    return refused


@pytest.fixture(autouse=True)
def _no_processes_or_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("open a network connection"))
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse("open a network connection"))
