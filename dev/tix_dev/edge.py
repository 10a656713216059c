"""The Envoy edge: one bootstrap, rendered from the service registry and the descriptor set, for two targets.

``local`` listens on 127.0.0.1 and reaches the services on their registry ports; ``k8s`` listens on 0.0.0.0 and
reaches them through their Kubernetes Services by DNS. Everything else (filters, routes, error bodies) is the same,
so what the e2e tests prove locally is what the cluster runs. ``envoy/README.md`` explains each part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from tix.identity import JWT_AUDIENCE, JWT_ISSUER, USER_ID_METADATA
from tix.services import SERVICES
from tix_dev.settings import DESCRIPTOR_PATH, DevSettings
from tix_dev.tokens import dev_key_paths

PROTO_PACKAGE = "tix.v1"
JWT_PROVIDER = "tix"
# The edge's defaults for local runs; tests pass free ports instead.
LOCAL_LISTEN_PORT = 8080
LOCAL_ADMIN_PORT = 9901
UNARY_TIMEOUT = "15s"
# A stream with no message for this long is closed; WatchSeats and WatchQueue send heartbeats well within it.
STREAM_IDLE_TIMEOUT = "3600s"
# Generous for a whole edge replica, tighter for the money path; both answer 429 with a JSON Status.
GLOBAL_RATE_LIMIT = {"max_tokens": 5000, "tokens_per_fill": 5000, "fill_interval": "1s"}
BOOKING_RATE_LIMIT = {"max_tokens": 200, "tokens_per_fill": 200, "fill_interval": "1s"}
SSE_ACCEPT = "text/event-stream"
MAX_CONNECTIONS = 50_000

_TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
_BOOKING_LIMITER = "tix.booking_ratelimit"
_ALL = {"numerator": 100, "denominator": "HUNDRED"}


@dataclass(frozen=True)
class HttpRoute:
    """One REST route of the public contract, from a method's ``google.api.http`` annotation."""

    service: str  # full name, e.g. tix.v1.EventService
    method: str
    verb: str
    path: str
    server_streaming: bool

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.method}"


@dataclass(frozen=True)
class EdgeTarget:
    """Where the edge listens, where the services are, and where its files are mounted."""

    listen_address: str
    listen_port: int
    admin_address: str
    admin_port: int
    # service short name -> (host, port)
    upstreams: Mapping[str, tuple[str, int]]
    cluster_discovery: str  # STATIC or STRICT_DNS
    descriptor_path: str
    jwks_path: str
    health_check_interval: str
    global_rate_limit: Mapping[str, Any] = field(default_factory=lambda: dict(GLOBAL_RATE_LIMIT))
    booking_rate_limit: Mapping[str, Any] = field(default_factory=lambda: dict(BOOKING_RATE_LIMIT))


def http_routes(descriptor_path: Path = DESCRIPTOR_PATH) -> list[HttpRoute]:
    """Every method of the tix.v1 services with its HTTP binding, in descriptor order."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())
    routes = []
    for file in files.file:
        if file.package != PROTO_PACKAGE:
            continue
        for service in file.service:
            for method in service.method:
                rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]
                verb = rule.WhichOneof("pattern")
                if verb is None or verb == "custom":
                    continue
                routes.append(
                    HttpRoute(
                        service=f"{file.package}.{service.name}",
                        method=method.name,
                        verb=verb.upper(),
                        path=getattr(rule, verb),
                        server_streaming=method.server_streaming,
                    )
                )
    return routes


def service_full_names(descriptor_path: Path = DESCRIPTOR_PATH) -> dict[str, str]:
    """Registry short name (event) -> full gRPC service name (tix.v1.EventService)."""
    names = {route.service for route in http_routes(descriptor_path)}
    out = {}
    for short in SERVICES:
        full = f"{PROTO_PACKAGE}.{short.capitalize()}Service"
        if full not in names:
            raise ValueError(f"{full} has no HTTP routes in {descriptor_path}")
        out[short] = full
    return out


def local_target(
    *,
    listen_port: int = LOCAL_LISTEN_PORT,
    admin_port: int = LOCAL_ADMIN_PORT,
    service_ports: Mapping[str, int] | None = None,
    descriptor_path: Path = DESCRIPTOR_PATH,
    jwks_path: Path | None = None,
    booking_rate_limit: Mapping[str, Any] | None = None,
) -> EdgeTarget:
    ports = {name: entry.port for name, entry in SERVICES.items()} | dict(service_ports or {})
    return EdgeTarget(
        listen_address="127.0.0.1",
        listen_port=listen_port,
        admin_address="127.0.0.1",
        admin_port=admin_port,
        upstreams={name: ("127.0.0.1", port) for name, port in ports.items()},
        cluster_discovery="STATIC",
        descriptor_path=str(descriptor_path.resolve()),
        jwks_path=str((jwks_path or dev_key_paths(DevSettings().var_dir)[1]).resolve()),
        health_check_interval="2s",
        booking_rate_limit=dict(booking_rate_limit or BOOKING_RATE_LIMIT),
    )


def k8s_target() -> EdgeTarget:
    return EdgeTarget(
        listen_address="0.0.0.0",
        listen_port=8080,
        # The kubelet's readiness probe reaches /ready on the pod IP; the NetworkPolicy keeps others out.
        admin_address="0.0.0.0",
        admin_port=9901,
        upstreams={name: (f"{name}-svc", entry.port) for name, entry in SERVICES.items()},
        cluster_discovery="STRICT_DNS",
        descriptor_path="/etc/tix/descriptor/tix.pb",
        jwks_path="/etc/tix/jwks/jwks.json",
        health_check_interval="5s",
    )


def render_config(target: str | EdgeTarget = "local", **overrides: Any) -> str:
    """The Envoy bootstrap for ``local`` or ``k8s`` (or a ready-made target) as YAML.

    ``overrides`` go to :func:`local_target` (listen_port, admin_port, service_ports, descriptor_path, jwks_path,
    booking_rate_limit).
    """
    if isinstance(target, EdgeTarget):
        edge = target
    elif target == "local":
        edge = local_target(**overrides)
    elif target == "k8s":
        if overrides:
            raise ValueError("the k8s edge takes no overrides: it is committed as k8s/base/edge/envoy.yaml")
        edge = k8s_target()
    else:
        raise ValueError(f"unknown edge target {target!r}; local or k8s")
    rendered_by = f"`tix edge config --target {target}`" if isinstance(target, str) else "tix_dev.edge.render_config"
    header = (
        f"# The Tix Envoy edge, rendered by {rendered_by} from dev/tix_dev/edge.py.\n"
        "# Do not edit by hand: change dev/tix_dev/edge.py and render again. envoy/README.md explains it.\n"
    )
    return header + yaml.safe_dump(bootstrap(edge), sort_keys=False, default_flow_style=False, width=120)


def bootstrap(edge: EdgeTarget) -> dict[str, Any]:
    full_names = service_full_names()
    routes = http_routes()
    return {
        "admin": {
            "address": _address(edge.admin_address, edge.admin_port),
        },
        "static_resources": {
            "listeners": [_listener(edge, full_names, routes)],
            "clusters": [
                _cluster(edge, short, full_names[short], host, port) for short, (host, port) in edge.upstreams.items()
            ],
        },
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {}}]},
        # A ceiling on open connections so a flood cannot exhaust file descriptors (Envoy warns without one).
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3."
                        "DownstreamConnectionsConfig",
                        "max_active_downstream_connections": MAX_CONNECTIONS,
                    },
                }
            ]
        },
    }


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def _listener(edge: EdgeTarget, full_names: Mapping[str, str], routes: list[HttpRoute]) -> dict[str, Any]:
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
        "HttpConnectionManager",
        "stat_prefix": "edge",
        "codec_type": "AUTO",
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "stream_idle_timeout": STREAM_IDLE_TIMEOUT,
        "access_log": [_access_log()],
        "local_reply_config": _local_reply_config(),
        "route_config": _route_config(edge, full_names, routes),
        "http_filters": _http_filters(edge, full_names),
    }
    return {
        "name": "edge",
        "address": _address(edge.listen_address, edge.listen_port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _http_filters(edge: EdgeTarget, full_names: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        # Identity comes only from a verified JWT: drop any x-user-id a client sent before anything reads it.
        {
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": USER_ID_METADATA}]},
            },
        },
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": _rate_limit("edge_rate_limit", edge.global_rate_limit),
        },
        # REST in, gRPC out (native gRPC calls pass through untouched). It rewrites :path to the gRPC method, so
        # the JWT rules after it see gRPC paths: one rule set covers REST and native gRPC callers alike.
        {"name": _TRANSCODER, "typed_config": _transcoder(edge, full_names, sse=False)},
        {"name": "envoy.filters.http.jwt_authn", "typed_config": _jwt_authn(edge, full_names)},
        # Configured per route (the booking routes); without a route config it lets everything through.
        {
            "name": _BOOKING_LIMITER,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "booking_rate_limit",
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        },
    ]


def _rate_limit(stat_prefix: str, bucket: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": stat_prefix,
        "token_bucket": dict(bucket),
        "filter_enabled": {"runtime_key": f"{stat_prefix}_enabled", "default_value": _ALL},
        "filter_enforced": {"runtime_key": f"{stat_prefix}_enforced", "default_value": _ALL},
        "rate_limited_as_resource_exhausted": True,
    }


def _transcoder(edge: EdgeTarget, full_names: Mapping[str, str], *, sse: bool) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        "proto_descriptor": edge.descriptor_path,
        "services": sorted(full_names.values()),
        "print_options": {
            "add_whitespace": False,
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": False,
            # Browsers (Accept: text/event-stream) get SSE frames; everyone else newline-delimited JSON.
            "stream_newline_delimited": not sse,
            "stream_sse_style_delimited": sse,
        },
        "convert_grpc_status": True,
        "request_validation_options": {
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
            "reject_binding_body_field_collisions": True,
        },
        "case_insensitive_enum_parsing": True,
    }


def _jwt_authn(edge: EdgeTarget, full_names: Mapping[str, str]) -> dict[str, Any]:
    verified = {"provider_name": JWT_PROVIDER}
    # Public reads still learn who is calling when a good token comes along; a bad one is ignored, not fatal.
    public = {"requires_any": {"requirements": [verified, {"allow_missing_or_failed": {}}]}}
    rules = [
        # Stripe calls without a JWT; the service verifies the Stripe-Signature header instead.
        {"match": {"path": f"/{full_names['booking']}/HandleStripeWebhook"}},
        {"match": {"prefix": f"/{full_names['booking']}/"}, "requires": verified},
        {"match": {"prefix": f"/{full_names['queue']}/"}, "requires": verified},
        {"match": {"prefix": f"/{full_names['event']}/"}, "requires": public},
        {"match": {"prefix": f"/{full_names['search']}/"}, "requires": public},
    ]
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {
            JWT_PROVIDER: {
                "issuer": JWT_ISSUER,
                "audiences": [JWT_AUDIENCE],
                "local_jwks": {"filename": edge.jwks_path},
                "forward": False,
                "claim_to_headers": [{"header_name": USER_ID_METADATA, "claim_name": "sub"}],
                "clock_skew_seconds": 30,
            }
        },
        "rules": rules,
    }


def _route_config(edge: EdgeTarget, full_names: Mapping[str, str], routes: list[HttpRoute]) -> dict[str, Any]:
    by_service = {full: short for short, full in full_names.items()}
    grpc_routes: list[dict[str, Any]] = []
    for route in routes:
        if route.server_streaming:
            grpc_routes.append(
                {
                    "name": f"{route.service}.{route.method}",
                    "match": {"path": route.grpc_path},
                    "route": {
                        "cluster": by_service[route.service],
                        "timeout": "0s",
                        "idle_timeout": STREAM_IDLE_TIMEOUT,
                    },
                }
            )
    for short, full in full_names.items():
        service_route: dict[str, Any] = {
            "name": full,
            "match": {"prefix": f"/{full}/"},
            "route": {"cluster": short, "timeout": UNARY_TIMEOUT},
        }
        if short == "booking":
            service_route["typed_per_filter_config"] = {
                _BOOKING_LIMITER: _rate_limit("booking_rate_limit", edge.booking_rate_limit)
            }
        grpc_routes.append(service_route)
    not_found = {"status": 404, "body": {"inline_string": "no such route"}}
    # The transcoder reads its per-route options from the route matched by the REST request (before it rewrites
    # the path to the gRPC method), so these REST catch-alls pick the stream framing; requests that reach them
    # untranscoded are unknown paths and get the JSON 404.
    rest_routes = [
        {
            "name": "rest-sse",
            "match": {"prefix": "/", "headers": [{"name": "accept", "string_match": {"contains": SSE_ACCEPT}}]},
            "direct_response": not_found,
            "typed_per_filter_config": {_TRANSCODER: _transcoder(edge, full_names, sse=True)},
        },
        {"name": "rest", "match": {"prefix": "/"}, "direct_response": not_found},
    ]
    return {
        "name": "edge",
        "virtual_hosts": [{"name": "tix", "domains": ["*"], "routes": grpc_routes + rest_routes}],
    }


def _cluster(edge: EdgeTarget, short: str, full_name: str, host: str, port: int) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": short,
        "type": edge.cluster_discovery,
        "connect_timeout": "2s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "5s"},
                        # More streams open more connections, which the kernel spreads over a pod's
                        # SO_REUSEPORT worker processes (one connection would pin them all to one worker).
                        "max_concurrent_streams": 1000,
                    }
                },
            }
        },
        # Envoy's defaults allow 1,024 requests in flight per cluster, and every open WatchQueue or WatchSeats
        # stream is one: the 1,025th fan in a waiting room would get a 503. Size them for a stampede instead.
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": 100_000,
                    "max_pending_requests": 100_000,
                    "max_requests": 1_000_000,
                    "max_retries": 3,
                }
            ]
        },
        "load_assignment": {
            "cluster_name": short,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": edge.health_check_interval,
                "no_traffic_interval": edge.health_check_interval,
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": full_name},
            }
        ],
    }
    if edge.cluster_discovery == "STRICT_DNS":
        # Headless Services: DNS lists every ready pod, so each call is balanced across pods, not each connection.
        cluster.update({"dns_refresh_rate": "5s", "respect_dns_ttl": True, "dns_lookup_family": "V4_PREFERRED"})
    return cluster


def _status_body(code: int, reason: str) -> dict[str, Any]:
    """A local reply as the JSON google.rpc.Status the services' errors are transcoded to."""
    return {
        "json_format": {
            "code": code,
            "message": "%LOCAL_REPLY_BODY%",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "tix.dev"}
            ],
        },
        "content_type": "application/json",
    }


# HTTP status of Envoy's own replies -> (google.rpc.Code, ErrorInfo reason).
_LOCAL_REPLIES = (
    (400, 3, "INVALID_REQUEST"),
    (401, 16, "UNAUTHENTICATED"),
    (403, 7, "PERMISSION_DENIED"),
    (404, 5, "ROUTE_NOT_FOUND"),
    (413, 3, "REQUEST_TOO_LARGE"),
    (429, 8, "RATE_LIMITED"),
    (503, 14, "UPSTREAM_UNAVAILABLE"),
    (504, 4, "UPSTREAM_TIMEOUT"),
)


def _local_reply_config() -> dict[str, Any]:
    mappers = [
        {
            "filter": {
                "status_code_filter": {
                    "comparison": {"op": "EQ", "value": {"default_value": status, "runtime_key": f"local_reply_{status}"}}
                }
            },
            "body_format_override": _status_body(code, reason),
        }
        for status, code, reason in _LOCAL_REPLIES
    ]
    return {"mappers": mappers, "body_format": _status_body(13, "EDGE_ERROR")}


def _access_log() -> dict[str, Any]:
    fields = {
        "time": "%START_TIME%",
        "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "route": "%ROUTE_NAME%",
        "status": "%RESPONSE_CODE%",
        "flags": "%RESPONSE_FLAGS%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "duration_ms": "%DURATION%",
        "upstream": "%UPSTREAM_CLUSTER%",
        "bytes_in": "%BYTES_RECEIVED%",
        "bytes_out": "%BYTES_SENT%",
        "user": f"%REQ({USER_ID_METADATA})%",
        "request_id": "%REQ(X-REQUEST-ID)%",
    }
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": fields},
        },
    }
