"""The benchmarks cannot rot: every ``bench/`` module imports, and ``python -m bench --smoke`` runs every scenario
(baselines, the gRPC sale, the sale through Envoy, the naive design, the checker, best-available for crowds, the
read path, the waiting room) at toy size. ``make bench``, the
real measurement, stays out of ``make test``; this only proves it would run."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys

import bench
from tests.conftest import PG_BASE
from tix_dev.settings import REPO_ROOT


def test_every_bench_module_imports():
    names = [info.name for info in pkgutil.iter_modules(bench.__path__, prefix="bench.")]
    assert "bench.__main__" in names
    assert "bench.envoy_edge" in names
    assert "bench.read" in names
    for name in names:
        importlib.import_module(name)


def test_the_bench_runs_every_scenario_at_toy_size():
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIX_")}
    env["TIX_BENCH_PG"] = PG_BASE
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=360, check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output[-4000:]
    for figure in ("redis", "sale: reserve decisions/s", "envoy sale: reserve decisions/s",
                   "naive: reserve decisions/s", "map 304", "event page", "map during a sale",
                   "change -> last of", "reconnect storm", "cdc: commit -> indexed lag p99",
                   "(a) best-available 1-8 seats: decisions/s", "(b) leaked holds", "(c) bystander GetBooking p99",
                   "queue: JoinQueue/s", "watchers: slot freed -> last due watcher", "SSE watchers: slot freed"):
        assert figure in output, f"{figure!r} missing from the report:\n{output[-4000:]}"
    assert "skipped" not in output, output[-4000:]
    assert output.count("checker (") == 5, output[-4000:]
