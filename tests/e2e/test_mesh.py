"""The mesh runner's process management: a child that dies is reported with its log, and nothing is left behind."""

from __future__ import annotations

import socket

import pytest

from tix_dev.readiness import free_port
from tix_dev.up import Mesh, MeshError, MeshPorts

pytestmark = pytest.mark.e2e


def test_a_child_that_dies_at_start_is_reported_with_its_log_and_everything_is_stopped(tmp_path):
    with socket.socket() as taken:
        # Envoy cannot bind its admin port when something else holds it, and exits.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = MeshPorts(edge=free_port(), admin=taken.getsockname()[1], services={}, metrics={})
        mesh = Mesh(var_dir=tmp_path, ports=ports, services=(), with_localstripe=False)
        mesh.start()
        try:
            with pytest.raises(MeshError) as failure:
                mesh.wait_ready(timeout=20)
        finally:
            processes = [child.process for child in mesh.children]
            mesh.stop(grace=5)
    assert "envoy exited" in str(failure.value)
    assert str(tmp_path / "log" / "envoy.log") in str(failure.value)
    assert all(process.poll() is not None for process in processes)
    assert mesh.children == []
