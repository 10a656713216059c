"""The services of the mesh, by short name, with their local ports; their definitions come from entry points.

Each service package declares its ``ServiceDefinition`` under the ``tix.services`` entry-point group (see
``pyproject.toml``), so the runtime finds ``tix serve booking`` without importing any service itself, and loads
only the one it was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

from tix.server import ServiceDefinition

SERVICES_GROUP = "tix.services"


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    port: int
    metrics_port: int
    # The service's HTTP listener beside gRPC, when it has one (the event service's read path); 0: none.
    http_port: int = 0
    # Routed on the public edge; False for internal services (operators reach those inside the cluster only).
    edge: bool = True


SERVICES: dict[str, ServiceEntry] = {
    entry.name: entry
    for entry in (
        ServiceEntry("event", 50051, 9101, http_port=50061),
        ServiceEntry("search", 50052, 9102),
        ServiceEntry("booking", 50053, 9103),
        ServiceEntry("queue", 50054, 9104),
        # Internal: operator controls (AdminService), never routed on the public edge.
        ServiceEntry("admin", 50055, 9105, edge=False),
    )
}
# The services behind the public edge (every one with REST routes).
EDGE_SERVICES: dict[str, ServiceEntry] = {name: entry for name, entry in SERVICES.items() if entry.edge}


def load_definition(name: str) -> ServiceDefinition:
    """Import one service's ``ServiceDefinition`` (its ``server`` module) through its entry point."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    found = entry_points(group=SERVICES_GROUP, name=name)
    if not found:
        raise ValueError(f"service {name!r} is not installed (no {SERVICES_GROUP} entry point)")
    (entry,) = found
    definition = entry.load()
    if not isinstance(definition, ServiceDefinition):
        raise TypeError(f"{entry.value} is not a ServiceDefinition")
    return definition
