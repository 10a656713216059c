"""The services of the mesh, by short name: where their definitions live and their local ports."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from tix.server import ServiceDefinition


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    module: str
    port: int
    metrics_port: int


SERVICES: dict[str, ServiceEntry] = {
    entry.name: entry
    for entry in (
        ServiceEntry("event", "event_svc.server", 50051, 9101),
        ServiceEntry("search", "search_svc.server", 50052, 9102),
        ServiceEntry("booking", "booking_svc.server", 50053, 9103),
        ServiceEntry("queue", "queue_svc.server", 50054, 9104),
    )
}


def load_definition(name: str) -> ServiceDefinition:
    """Import a service's ``SERVICE`` definition lazily, so one service never imports another."""
    try:
        entry = SERVICES[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}") from None
    return importlib.import_module(entry.module).SERVICE
