"""The Envoy edge: one bootstrap, rendered from the service registry and the descriptor set, for two targets.

``local`` listens on 127.0.0.1 and reaches the services on their registry ports; ``k8s`` listens on 0.0.0.0 and
reaches them through their Kubernetes Services by DNS. Everything else (filters, routes, limits, error bodies) is the
same, so what the e2e tests prove locally is what the cluster runs. ``envoy/README.md`` explains each part.

The edge is the trust boundary. Every public route comes from a ``google.api.http`` annotation of the descriptor
set (admin services never: :data:`ADMIN_SERVICE_SUFFIX`), and each route's treatment follows from what it is, not
from a hand list: a route of a public service is a *read* (per-IP budget, token optional), a method whose request
is a raw ``google.api.HttpBody`` is a *webhook* (no token, its own budget and body limit, the service verifies the
signature), and everything else belongs to a *fan* (token required, per-fan and per-IP budgets).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.api import annotations_pb2, http_pb2
from google.protobuf import any_pb2, descriptor_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from tix.identity import (
    JWT_AUDIENCE,
    JWT_ISSUER,
    STREAM_TOKEN_AUDIENCE,
    STREAM_TOKEN_ISSUER,
    STREAM_TOKEN_PARAMETER,
    SUBJECT_PATTERN,
    USER_ID_METADATA,
)
from tix.services import EDGE_SERVICES, SERVICES
from tix_dev.settings import DESCRIPTOR_PATH, REPO_ROOT, DevSettings
from tix_dev.signin import DEFAULT_PORT as SIGN_IN_PORT
from tix_dev.signin import SIGN_IN_PATH
from tix_dev.tokens import dev_key_paths, dev_stream_jwks_path
from tix_dev.webapp import ENCODINGS, WebConfig, WebFile, build_web, plan_web, web_files_at

PROTO_PACKAGE = "tix.v1"
JWT_PROVIDER = "tix"
STREAM_PROVIDER = "tix_stream"
# Services whose routes are public reads (a token, when sent, still identifies the caller); every other service
# needs a verified fan, so a new service is closed until it is named here.
PUBLIC_SERVICES = frozenset({"event", "search"})
# Operator RPCs live in services named like this; the edge never routes them, whatever their annotations say.
ADMIN_SERVICE_SUFFIX = "AdminService"
# A method that takes the raw HTTP body is a webhook receiver: it verifies its sender's signature itself.
WEBHOOK_INPUT_TYPE = ".google.api.HttpBody"
# The OpenAPI document and its reference page (tix_dev.openapi, written by `make proto`), served by the edge.
OPENAPI_PATH = REPO_ROOT / "gen" / "openapi.json"
REFERENCE_PATH = REPO_ROOT / "gen" / "openapi.html"
# The edge's defaults for local runs; tests pass free ports instead.
LOCAL_LISTEN_PORT = 8080
LOCAL_ADMIN_PORT = 9901
UNARY_TIMEOUT = "15s"
# A stream with no message for this long is closed; WatchSeats and WatchQueue send heartbeats well within it.
STREAM_IDLE_TIMEOUT = "3600s"
SSE_ACCEPT = "text/event-stream"
MAX_CONNECTIONS = 50_000
# Every bucket refills at least once a second, so a 429 can promise it: Retry-After: 1, RetryInfo 1s.
RETRY_AFTER_SECONDS = 1
# Distinct clients (fans, addresses) with a bucket of their own at once per replica; the least recent are forgotten.
MAX_TRACKED_CLIENTS = 100_000
# Development origins: any port of the loopback names (a dev server of the web app, a test page).
LOCAL_ORIGINS = (r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?$",)

_TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
_BUFFER = "envoy.filters.http.buffer"
_CORS = "envoy.filters.http.cors"
_LIMITER = "tix.ratelimit"
_STREAM_JWT = "tix.stream_tokens"
_UNROUTED = "unrouted"
# Where the stream token's subject waits between the two JWT filters (clients' copies are removed first).
STREAM_USER_HEADER = "x-tix-stream-user"
_ALL = {"numerator": 100, "denominator": "HUNDRED"}


class RouteClass(enum.Enum):
    """Who a route serves, which decides its token requirement and its rate budgets."""

    READ = "read"  # public reads: per client IP
    FAN = "fan"  # a signed-in fan's calls: per fan and per client IP
    WEBHOOK = "webhook"  # signed callbacks (Stripe): one budget of their own


@dataclass(frozen=True)
class Bucket:
    """A token bucket: ``burst`` requests at once, refilled by ``per_second`` (at least 1) every second."""

    burst: int
    per_second: int

    def __post_init__(self) -> None:
        if self.per_second < 1 or self.burst < 1:
            raise ValueError("a bucket refills at least one token a second and holds at least one")

    def token_bucket(self) -> dict[str, Any]:
        return {"max_tokens": self.burst, "tokens_per_fill": self.per_second, "fill_interval": "1s"}


# Far above anything a machine can push through: benchmarks measure the services, not the limits.
_UNLIMITED = Bucket(10_000_000, 10_000_000)


@dataclass(frozen=True)
class EdgeLimits:
    """Sizes and rate budgets of one edge replica (envoy/README.md explains each number)."""

    # Everything through one replica: an overload guard, shed before any work is done.
    edge: Bucket = Bucket(burst=5000, per_second=5000)
    # Public reads per client IP: a venue's Wi-Fi or a carrier NAT puts hundreds of fans behind one address,
    # each loading an event page (event, seat map, watch) at the on-sale minute.
    read_per_ip: Bucket = Bucket(burst=1000, per_second=200)
    # A signed-in fan: checkout is a handful of calls (join, stream token, reserve, confirm); retries fit the burst.
    fan_per_user: Bucket = Bucket(burst=20, per_second=2)
    # Fans behind one address together; a bot farm with many accounts on one address stops here.
    fan_per_ip: Bucket = Bucket(burst=200, per_second=50)
    # Stripe's webhooks: about one per payment; Stripe's own API budget (25-100/s) bounds them.
    webhook: Bucket = Bucket(burst=200, per_second=100)
    # JSON bodies of the API are a few hundred bytes; a webhook event can carry a whole PaymentIntent.
    max_request_body_bytes: int = 64 * 1024
    max_webhook_body_bytes: int = 512 * 1024
    # Headers beyond this are a 431, a path with its query beyond max_url_bytes a 414; both stay under what the
    # services accept as gRPC metadata (tix.server), so a request the edge lets through is never refused there.
    max_request_headers_kb: int = 32
    max_url_bytes: int = 4096

    @classmethod
    def unlimited(cls) -> EdgeLimits:
        """The benchmarks' switch: every rate budget out of the way, size limits kept."""
        return cls(
            edge=_UNLIMITED, read_per_ip=_UNLIMITED, fan_per_user=_UNLIMITED, fan_per_ip=_UNLIMITED,
            webhook=_UNLIMITED,
        )


def load_limits(path: Path) -> EdgeLimits:
    """EdgeLimits from a JSON file: any of its fields, buckets as {"burst": N, "per_second": N}."""
    given = json.loads(path.read_text())
    known = set(EdgeLimits.__dataclass_fields__)
    unknown = set(given) - known
    if unknown:
        raise ValueError(f"{path}: unknown limits {sorted(unknown)}; known: {sorted(known)}")
    values: dict[str, Any] = {
        key: Bucket(**value) if isinstance(value, dict) else int(value) for key, value in given.items()
    }
    return EdgeLimits(**values)


@dataclass(frozen=True)
class HttpRoute:
    """One REST route of the public contract, from a method's ``google.api.http`` annotation."""

    service: str  # full name, e.g. tix.v1.EventService
    method: str
    verb: str
    path: str
    server_streaming: bool
    input_type: str = ""  # full proto name with a leading dot, e.g. .tix.v1.GetEventRequest

    @property
    def grpc_path(self) -> str:
        return f"/{self.service}/{self.method}"

    @property
    def name(self) -> str:
        return f"{self.service}.{self.method}"

    @property
    def rest_regex(self) -> str:
        """The REST path template as an RE2 pattern for a whole path: each variable is one segment
        (``{event_id}``) or, with ``=**``, the rest of the path."""
        pattern = ""
        for literal, variable in re.findall(r"([^{]*)(\{[^}]*\})?", self.path):
            pattern += re.escape(literal)
            if variable:
                pattern += ".+" if variable.endswith("**}") else "[^/]+"
        return f"^{pattern}$"

    def route_class(self, full_names: Mapping[str, str]) -> RouteClass:
        if self.input_type == WEBHOOK_INPUT_TYPE:
            return RouteClass.WEBHOOK
        public = {full_names[short] for short in PUBLIC_SERVICES if short in full_names}
        return RouteClass.READ if self.service in public else RouteClass.FAN


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
    stream_jwks_path: str = ""
    openapi_path: str = ""
    reference_path: str = ""
    limits: EdgeLimits = field(default_factory=EdgeLimits)
    # Browser origins allowed to call the API from another origin (exact origins or RE2 patterns starting with ^).
    cors_origins: tuple[str, ...] = ()
    # The event service's HTTP listener (the read path, see READ_ROUTES); None: those routes stay transcoded.
    read_upstream: tuple[str, int] | None = None
    # The fans' web app (tix_dev.webapp), answered by the edge itself on its own origin; empty: no web app.
    web_files: tuple[WebFile, ...] = ()
    # The development sign-in (tix_dev.signin) at SIGN_IN_PATH; None (always in production): no such route.
    sign_in_upstream: tuple[str, int] | None = None


def http_routes(descriptor_path: Path = DESCRIPTOR_PATH) -> list[HttpRoute]:
    """Every method of the tix.v1 services with its HTTP binding, in descriptor order."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes())
    routes = []
    for file in files.file:
        if file.package != PROTO_PACKAGE:
            continue
        for service in file.service:
            if service.name.endswith(ADMIN_SERVICE_SUFFIX):
                continue
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
                        input_type=method.input_type,
                    )
                )
    return routes


def service_full_names(descriptor_path: Path = DESCRIPTOR_PATH) -> dict[str, str]:
    """Registry short name (event) -> full gRPC service name (tix.v1.EventService)."""
    names = {route.service for route in http_routes(descriptor_path)}
    out = {}
    for short in EDGE_SERVICES:
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
    stream_jwks_path: Path | None = None,
    limits: EdgeLimits | None = None,
    cors_origins: tuple[str, ...] = LOCAL_ORIGINS,
    read_port: int | None = None,
    web_dir: Path | None = None,
    web_config: WebConfig | None = None,
    sign_in_port: int | None = None,
) -> EdgeTarget:
    """The local edge. The web app is built into ``web_dir`` (default: the var directory's ``web/``) as a side
    effect, since the configuration names its files. The development sign-in is routed unless the environment is
    production."""
    # Internal services (the admin service) get no cluster: nothing on the edge may reach them.
    ports = {name: entry.port for name, entry in EDGE_SERVICES.items()} | {
        name: port for name, port in (service_ports or {}).items() if name in EDGE_SERVICES
    }
    read_port = SERVICES["event"].http_port if read_port is None else read_port
    settings = DevSettings()
    var_dir = settings.var_dir
    development = settings.environment != "production"
    web_config = web_config or WebConfig.local()
    if development:
        web_config = dataclasses.replace(web_config, dev_sign_in_path=SIGN_IN_PATH)
    else:
        web_config = dataclasses.replace(web_config, dev_sign_in_path="")
    web_files = build_web((web_dir or var_dir / "web").resolve(), web_config)
    return EdgeTarget(
        listen_address="127.0.0.1",
        listen_port=listen_port,
        admin_address="127.0.0.1",
        admin_port=admin_port,
        upstreams={name: ("127.0.0.1", port) for name, port in ports.items()},
        cluster_discovery="STATIC",
        descriptor_path=str(descriptor_path.resolve()),
        jwks_path=str((jwks_path or dev_key_paths(var_dir)[1]).resolve()),
        stream_jwks_path=str((stream_jwks_path or dev_stream_jwks_path(var_dir)).resolve()),
        openapi_path=str(OPENAPI_PATH),
        reference_path=str(REFERENCE_PATH),
        health_check_interval="2s",
        limits=limits or EdgeLimits(),
        cors_origins=tuple(cors_origins),
        read_upstream=("127.0.0.1", read_port) if read_port else None,
        web_files=tuple(web_files),
        sign_in_upstream=("127.0.0.1", sign_in_port or SIGN_IN_PORT) if development else None,
    )


def k8s_target() -> EdgeTarget:
    return EdgeTarget(
        listen_address="0.0.0.0",
        listen_port=8080,
        # The kubelet's readiness probe reaches /ready on the pod IP; the NetworkPolicy keeps others out.
        admin_address="0.0.0.0",
        admin_port=9901,
        upstreams={name: (f"{name}-svc", entry.port) for name, entry in EDGE_SERVICES.items()},
        cluster_discovery="STRICT_DNS",
        descriptor_path="/etc/tix/descriptor/tix.pb",
        jwks_path="/etc/tix/jwks/jwks.json",
        stream_jwks_path="/etc/tix/stream-jwks/jwks.json",
        openapi_path="/etc/tix/openapi/openapi.json",
        reference_path="/etc/tix/openapi/openapi.html",
        health_check_interval="5s",
        # The web app is served on the edge's own origin; other origins are added per deployment (envoy/README.md).
        cors_origins=(),
        read_upstream=("event-svc", SERVICES["event"].http_port),
        # The web app from the edge-web ConfigMap (k8s/base/edge/web, written by `tix edge config --target k8s`).
        web_files=tuple(web_files_at(Path(K8S_WEB_MOUNT), plan_web(WebConfig.production()))),
    )


K8S_WEB_MOUNT = "/etc/tix/web"
K8S_WEB_CONFIG_MAP = "edge-web"


def write_k8s_web(directory: Path) -> list[str]:
    """The web app's files for the cluster's edge, and a kustomization that makes them the edge-web ConfigMap
    (mounted at K8S_WEB_MOUNT). Returns the file names."""
    build_web(directory, WebConfig.production())
    names = sorted(path.name for path in directory.iterdir())
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "configMapGenerator": [{"name": K8S_WEB_CONFIG_MAP, "files": names}],
    }
    header = "# Written by `tix edge config --target k8s --output k8s/base/edge/envoy.yaml`: the web app (web/), built.\n"
    (directory / "kustomization.yaml").write_text(header + yaml.safe_dump(kustomization, sort_keys=False))
    return names


def render_config(target: str | EdgeTarget = "local", **overrides: Any) -> str:
    """The Envoy bootstrap for ``local`` or ``k8s`` (or a ready-made target) as YAML.

    ``overrides`` go to :func:`local_target` (listen_port, admin_port, service_ports, descriptor_path, jwks_path,
    stream_jwks_path, limits, cors_origins, read_port, web_dir, web_config, sign_in_port).
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
            ]
            + _read_clusters(edge)
            + _sign_in_clusters(edge),
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
        # Larger header blocks are a 431 (HTTP/1.1 and HTTP/2 alike).
        "max_request_headers_kb": edge.limits.max_request_headers_kb,
        "access_log": [_access_log()],
        "local_reply_config": _local_reply_config(),
        "route_config": _route_config(edge, full_names, routes),
        "http_filters": _http_filters(edge, full_names, routes),
    }
    return {
        "name": "edge",
        "address": _address(edge.listen_address, edge.listen_port),
        "filter_chains": [
            {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": manager}]}
        ],
    }


def _http_filters(edge: EdgeTarget, full_names: Mapping[str, str], routes: list[HttpRoute]) -> list[dict[str, Any]]:
    return [
        # Identity comes only from a verified JWT: drop any x-user-id a client sent before anything reads it.
        {
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {"request_mutations": [{"remove": USER_ID_METADATA}, {"remove": STREAM_USER_HEADER}]},
            },
        },
        # First of the rest, so preflights are answered before any limit or token check, and every reply (errors
        # included) carries the CORS headers a page on an allowed origin needs to read it.
        {"name": _CORS, "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
        _request_line(edge.limits),
        {
            "name": _BUFFER,
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                "max_request_bytes": edge.limits.max_request_body_bytes,
            },
        },
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": _edge_rate_limit(edge.limits),
        },
        # Compression on the way out, after the transcoder has written JSON (filters encode in reverse order).
        *_compressor_filters(),
        # Stream tokens ride in the query string, which the transcoder drops when it rewrites the path: they are
        # verified here, before it, and only on stream routes.
        {"name": _STREAM_JWT, "typed_config": _stream_jwt_authn(edge, full_names, routes)},
        # REST in, gRPC out (native gRPC calls pass through untouched). It rewrites :path to the gRPC method, so
        # the JWT rules after it see gRPC paths: one rule set covers REST and native gRPC callers alike.
        {"name": _TRANSCODER, "typed_config": _transcoder(edge, full_names, sse=False)},
        {"name": "envoy.filters.http.jwt_authn", "typed_config": _jwt_authn(edge, full_names, routes)},
        # jwt_authn clears the headers its providers write before it verifies anything, so the stream token's
        # subject waits in a header of its own until here; a fan's header token, when both came, wins.
        {
            "name": "tix.stream_user",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                "mutations": {
                    "request_mutations": [
                        {
                            "append": {
                                "header": {"key": USER_ID_METADATA, "value": f"%REQ({STREAM_USER_HEADER})%"},
                                "append_action": "ADD_IF_ABSENT",
                            }
                        },
                        {"remove": STREAM_USER_HEADER},
                    ]
                },
            },
        },
        # After the JWT, so budgets can be per fan (x-user-id); each route's metadata names its budgets.
        {"name": _LIMITER, "typed_config": _class_rate_limit(edge.limits)},
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        },
    ]


def _request_line(limits: EdgeLimits) -> dict[str, Any]:
    """A few lines of Lua on the request line and headers:

    - 414 for a path and query longer than ``max_url_bytes`` (Envoy has no URL limit of its own apart from the header
      block, and no regex could say it: RE2 caps repetitions at 1,000);
    - headers that HTTP allows but gRPC metadata does not (a name with ``'`` or ``^``, a value with a control or
      non-ASCII byte) are dropped: forwarded, they would make the service's gRPC core fail the whole call (500);
    - the path the access log shows, with a stream token's value blanked out.
    """
    script = (
        "function envoy_on_request(handle)\n"
        "  local headers = handle:headers()\n"
        '  local path = headers:get(":path") or ""\n'
        f'  local logged = path:gsub("([?&]{STREAM_TOKEN_PARAMETER}=)[^&]*", "%1REDACTED")\n'
        f'  handle:streamInfo():dynamicMetadata():set("{_METADATA_NAMESPACE}", "path", logged)\n'
        f"  if #path > {limits.max_url_bytes} then\n"
        f'    handle:respond({{[":status"] = "414"}}, "the URL is longer than {limits.max_url_bytes} bytes")\n'
        "    return\n"
        "  end\n"
        "  local unfit = {}\n"
        "  for name, value in pairs(headers) do\n"
        '    if name:sub(1, 1) ~= ":" and (name:find("[^0-9a-z_.%-]") or value:find("[^\\32-\\126]")) then\n'
        "      unfit[#unfit + 1] = name\n"
        "    end\n"
        "  end\n"
        "  for _, name in ipairs(unfit) do headers:remove(name) end\n"
        "end\n"
    )
    return {
        "name": "tix.request_line",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": script},
        },
    }


def _edge_rate_limit(limits: EdgeLimits) -> dict[str, Any]:
    return {
        **_limiter_base("edge_rate_limit"),
        "token_bucket": limits.edge.token_bucket(),
        "filter_enabled": {"runtime_key": "edge_rate_limit_enabled", "default_value": _ALL},
        "filter_enforced": {"runtime_key": "edge_rate_limit_enforced", "default_value": _ALL},
    }


def _limiter_base(stat_prefix: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": stat_prefix,
        # gRPC callers get RESOURCE_EXHAUSTED (not UNAVAILABLE, which clients retry at once).
        "rate_limited_as_resource_exhausted": True,
        "response_headers_to_add": [
            {"header": {"key": "retry-after", "value": str(RETRY_AFTER_SECONDS)}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        ],
    }


# Descriptor entries: the budget (named by the route's metadata) and, for per-client budgets, the client.
_BUDGET_KEY = "budget"
_USER_KEY = "user"
_ADDRESS_KEY = "remote_address"
_METADATA_NAMESPACE = "tix.edge"


def route_budgets(route_class: RouteClass) -> dict[str, str]:
    """The budgets a route draws from, as its metadata: per fan, per client address, or shared by the class."""
    if route_class is RouteClass.READ:
        return {"per_address": "read-ip"}
    if route_class is RouteClass.FAN:
        return {"per_user": "fan-user", "per_address": "fan-ip"}
    return {"shared": "webhook"}


def _class_rate_limit(limits: EdgeLimits) -> dict[str, Any]:
    """One limiter whose buckets every route of a class shares: a bucket per fan and per client address (an empty
    descriptor value makes each distinct value its own bucket), and one for webhooks. Which of them a request
    draws from is read from its route's metadata (route_budgets), so routes are classified once, by rule."""

    def descriptor(budget: str, bucket: Bucket, client_key: str | None = None) -> dict[str, Any]:
        entries: list[dict[str, str]] = [{"key": _BUDGET_KEY, "value": budget}]
        if client_key:
            entries.append({"key": client_key})
        return {"entries": entries, "token_bucket": bucket.token_bucket()}

    def budget_of(kind: str) -> dict[str, Any]:
        return {
            "metadata": {
                "descriptor_key": _BUDGET_KEY,
                "metadata_key": {"key": _METADATA_NAMESPACE, "path": [{"key": kind}]},
                "source": "ROUTE_ENTRY",
                "skip_if_absent": True,
            }
        }

    return {
        **_limiter_base("client_rate_limit"),
        # Requests that draw from no budget (the documents, unknown paths) pass.
        "token_bucket": _UNLIMITED.token_bucket(),
        "filter_enabled": {"runtime_key": "client_rate_limit_enabled", "default_value": _ALL},
        "filter_enforced": {"runtime_key": "client_rate_limit_enforced", "default_value": _ALL},
        "always_consume_default_token_bucket": False,
        "max_dynamic_descriptors": MAX_TRACKED_CLIENTS,
        "rate_limits": [
            {"actions": [budget_of("per_user"), {"request_headers": {"header_name": USER_ID_METADATA,
                                                                      "descriptor_key": _USER_KEY}}]},
            {"actions": [budget_of("per_address"), {"remote_address": {}}]},
            {"actions": [budget_of("shared")]},
        ],
        "descriptors": [
            descriptor("read-ip", limits.read_per_ip, _ADDRESS_KEY),
            descriptor("fan-user", limits.fan_per_user, _USER_KEY),
            descriptor("fan-ip", limits.fan_per_ip, _ADDRESS_KEY),
            descriptor("webhook", limits.webhook),
        ],
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
        # Browsers encode a space in a query string as '+' (URLSearchParams, forms): "Test+Ba" is "Test Ba".
        "query_param_unescape_plus": True,
        # The stream token is the JWT filter's business, not a field of any request.
        "ignored_query_parameters": [STREAM_TOKEN_PARAMETER],
        "request_validation_options": {
            "reject_unknown_method": True,
            "reject_unknown_query_parameters": True,
            "reject_binding_body_field_collisions": True,
        },
        "case_insensitive_enum_parsing": True,
    }


def _provider_common(user_header: str = USER_ID_METADATA) -> dict[str, Any]:
    return {
        "forward": False,
        "claim_to_headers": [{"header_name": user_header, "claim_name": "sub"}],
        "clock_skew_seconds": 30,
        # A token without exp would be valid forever; a subject the services cannot use (a newline, a space) is
        # refused here, not forwarded as a header the upstream connection would choke on.
        "require_expiration": True,
        "subjects": {"safe_regex": {"regex": f"^{SUBJECT_PATTERN}$"}},
    }


def _jwt_authn(edge: EdgeTarget, full_names: Mapping[str, str], routes: list[HttpRoute]) -> dict[str, Any]:
    verified = {"provider_name": JWT_PROVIDER}
    # Public reads still learn who is calling when a good token comes along; a bad one is ignored, not fatal.
    public = {"requires_any": {"requirements": [verified, {"allow_missing_or_failed": {}}]}}
    # A fan's stream may have been authenticated by a stream token already (tix.stream_tokens, before the
    # transcoder); without either, the service refuses it (UNAUTHENTICATED), so no header token is no pass.
    stream = {"requires_any": {"requirements": [verified, {"allow_missing": {}}]}}
    rules: list[dict[str, Any]] = []
    for route in routes:
        kind = route.route_class(full_names)
        rule: dict[str, Any] = {"match": {"path": route.grpc_path}}
        if kind is RouteClass.READ:
            rule["requires"] = public
        elif kind is RouteClass.FAN:
            rule["requires"] = stream if route.server_streaming else verified
        rules.append(rule)  # webhooks: no requirement (the service verifies the sender's signature)
    rules += _read_jwt_rules(edge, public)
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {
            JWT_PROVIDER: {
                "issuer": JWT_ISSUER,
                "audiences": [JWT_AUDIENCE],
                "local_jwks": {"filename": edge.jwks_path},
                # Only the header: a fan's long-lived token is never accepted from a URL (logs, history, Referer).
                "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                **_provider_common(),
            }
        },
        "rules": rules,
    }


def _stream_jwt_authn(edge: EdgeTarget, full_names: Mapping[str, str], routes: list[HttpRoute]) -> dict[str, Any]:
    """Stream tokens (tix.identity), accepted from the access_token query parameter of stream routes only: required
    to be good on a fan's stream, ignored when bad on a public one (like a bad header token on a read)."""
    verified = {"provider_name": STREAM_PROVIDER}
    lenient = {"requires_any": {"requirements": [verified, {"allow_missing_or_failed": {}}]}}
    rules = [
        {
            "match": {
                "safe_regex": {"regex": route.rest_regex},
                "query_parameters": [{"name": STREAM_TOKEN_PARAMETER, "present_match": True}],
            },
            "requires": lenient if route.route_class(full_names) is RouteClass.READ else verified,
        }
        for route in routes
        if route.server_streaming and route.verb == "GET"
    ]
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {
            STREAM_PROVIDER: {
                "issuer": STREAM_TOKEN_ISSUER,
                "audiences": [STREAM_TOKEN_AUDIENCE],
                "local_jwks": {"filename": edge.stream_jwks_path},
                "from_params": [STREAM_TOKEN_PARAMETER],
                # Minted for a few minutes (queue_svc settings); a longer-lived one is not a stream token.
                "max_lifetime": "3600s",
                **_provider_common(STREAM_USER_HEADER),
            }
        },
        "rules": rules,
    }


def _cors_policy(edge: EdgeTarget) -> dict[str, Any]:
    origins = [
        {"safe_regex": {"regex": origin}} if origin.startswith("^") else {"exact": origin}
        for origin in edge.cors_origins
    ]
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": origins,
        "allow_methods": "GET, POST, OPTIONS",
        # What the web app sends: its token, JSON, a request id for support, EventSource's resume header, ETags.
        "allow_headers": "authorization, content-type, x-request-id, last-event-id, if-none-match",
        # What a page may read from answers: when to retry, ETags, the request id, gRPC statuses of streams.
        "expose_headers": "retry-after, etag, x-request-id, grpc-status, grpc-message, tix-feed-position",
        # Tokens travel in headers, never in cookies.
        "allow_credentials": False,
        "max_age": "600",
    }


def _route_config(edge: EdgeTarget, full_names: Mapping[str, str], routes: list[HttpRoute]) -> dict[str, Any]:
    by_service = {full: short for short, full in full_names.items()}
    # Catch-alls route to a cluster that does not exist, which the router answers with a 404. Not a
    # direct_response: the CORS filter acts only on routes with a route entry, and these are the routes REST
    # requests (and their preflights) match before the transcoder.
    not_found = {"cluster": _UNROUTED, "cluster_not_found_response_code": "NOT_FOUND"}
    webhook_body = {
        _BUFFER: {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
            "buffer": {"max_request_bytes": edge.limits.max_webhook_body_bytes},
        }
    }
    # One route per public method, by its gRPC path (what REST requests become in the transcoder, and what native
    # gRPC callers send). Methods without an HTTP binding, and admin services, have no route: a 404.
    grpc_routes: list[dict[str, Any]] = []
    for route in routes:
        kind = route.route_class(full_names)
        action: dict[str, Any] = {
            "cluster": by_service[route.service],
            "timeout": "0s" if route.server_streaming else UNARY_TIMEOUT,
        }
        if route.server_streaming:
            action["idle_timeout"] = STREAM_IDLE_TIMEOUT
        entry: dict[str, Any] = {
            "name": route.name,
            "match": {"path": route.grpc_path},
            "route": action,
            "metadata": {"filter_metadata": {_METADATA_NAMESPACE: route_budgets(kind)}},
        }
        if kind is RouteClass.WEBHOOK:
            entry["typed_per_filter_config"] = webhook_body
        grpc_routes.append(entry)
    # The buffer filter runs before the transcoder and sees the REST path: webhooks get their body limit there too.
    webhook_rest = [
        {
            "name": f"rest:{route.name}",
            "match": {"safe_regex": {"regex": route.rest_regex}},
            "route": not_found,
            "typed_per_filter_config": webhook_body,
        }
        for route in routes
        if route.route_class(full_names) is RouteClass.WEBHOOK
    ]
    # The transcoder reads its per-route options from the route matched by the REST request (before it rewrites
    # the path to the gRPC method), so these REST catch-alls pick the stream framing; requests that reach them
    # untranscoded are unknown paths and get the JSON 404.
    rest_routes = [
        {
            "name": "rest-sse",
            "match": {"prefix": "/", "headers": [{"name": "accept", "string_match": {"contains": SSE_ACCEPT}}]},
            "route": not_found,
            "typed_per_filter_config": {_TRANSCODER: _transcoder(edge, full_names, sse=True)},
        },
        {"name": "rest", "match": {"prefix": "/"}, "route": not_found},
    ]
    return {
        "name": "edge",
        # The catch-alls name a cluster that does not exist on purpose (see not_found).
        "validate_clusters": False,
        # The OpenAPI document is served whole from the edge's memory.
        "max_direct_response_body_size_bytes": 4 * 1024 * 1024,
        "virtual_hosts": [
            {
                "name": "tix",
                "domains": ["*"],
                "typed_per_filter_config": {_CORS: _cors_policy(edge)},
                "routes": _document_routes(edge) + _web_routes(edge) + _sign_in_routes(edge) + grpc_routes + webhook_rest + _read_routes(edge) + rest_routes,
            }
        ],
    }


def _web_routes(edge: EdgeTarget) -> list[dict[str, Any]]:
    """The web app's files, answered from the edge's memory: per file, its brotli and gzip twins for browsers
    that accept them (precompressed once at build time, so the compressor filters leave them alone), else the
    plain bytes. Hashed assets are immutable; index.html is revalidated on every visit."""
    untranscoded = {_TRANSCODER: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}
    get = {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}}
    routes: list[dict[str, Any]] = []
    for web_file in edge.web_files:
        variants: list[tuple[str, str, list[dict[str, Any]]]] = [
            (
                encoding,
                str(web_file.encoded(encoding)),
                [{"name": "accept-encoding", "string_match": {"contains": encoding}}],
            )
            for encoding, _ in ENCODINGS
        ]
        variants.append(("identity", str(web_file.file), []))
        for encoding, filename, headers in variants:
            response_headers = [
                _header("content-type", web_file.content_type),
                _header("cache-control", web_file.cache_control),
                _header("vary", "accept-encoding"),
                _header("x-content-type-options", "nosniff"),
            ]
            if encoding != "identity":
                response_headers.append(_header("content-encoding", encoding))
            routes.append(
                {
                    "name": f"web:{web_file.url_path}:{encoding}",
                    "match": {"path": web_file.url_path, "headers": [get, *headers]},
                    "direct_response": {"status": 200, "body": {"filename": filename}},
                    "response_headers_to_add": response_headers,
                    # A page load is a public read: the per-address read budget.
                    "metadata": {"filter_metadata": {_METADATA_NAMESPACE: route_budgets(RouteClass.READ)}},
                    "typed_per_filter_config": untranscoded,
                }
            )
    return routes


SIGN_IN_CLUSTER = "dev_signin"


def _sign_in_routes(edge: EdgeTarget) -> list[dict[str, Any]]:
    """Development only: POST /dev/signin to tix_dev.signin (a name becomes a token)."""
    if edge.sign_in_upstream is None:
        return []
    untranscoded = {_TRANSCODER: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}
    return [
        {
            "name": "dev.signin",
            "match": {"path": SIGN_IN_PATH, "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]},
            "route": {"cluster": SIGN_IN_CLUSTER, "timeout": UNARY_TIMEOUT},
            "metadata": {"filter_metadata": {_METADATA_NAMESPACE: route_budgets(RouteClass.READ)}},
            "typed_per_filter_config": untranscoded,
        }
    ]


def _sign_in_clusters(edge: EdgeTarget) -> list[dict[str, Any]]:
    if edge.sign_in_upstream is None:
        return []
    host, port = edge.sign_in_upstream
    return [
        {
            "name": SIGN_IN_CLUSTER,
            "type": "STATIC",
            "connect_timeout": "2s",
            "load_assignment": {
                "cluster_name": SIGN_IN_CLUSTER,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
            },
        }
    ]


def _document_routes(edge: EdgeTarget) -> list[dict[str, Any]]:
    """GET /openapi.json and its reference page /docs (tix_dev.openapi), answered by the edge itself."""
    if not edge.openapi_path:
        return []
    untranscoded = {_TRANSCODER: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}
    documents = (
        ("openapi", "/openapi.json", edge.openapi_path, "application/json"),
        ("reference", "/docs", edge.reference_path, "text/html; charset=utf-8"),
    )
    return [
        {
            "name": name,
            "match": {"path": path, "headers": [{"name": ":method", "string_match": {"exact": "GET"}}]},
            "direct_response": {"status": 200, "body": {"filename": filename}},
            "response_headers_to_add": [
                {"header": {"key": "content-type", "value": content_type}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
                {"header": {"key": "cache-control", "value": "public, max-age=300"}},
            ],
            "typed_per_filter_config": untranscoded,
        }
        for name, path, filename, content_type in documents
    ]


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



# --- the read path: the event service's HTTP listener and compression -------------------------------------------

# REST routes answered by the event service's HTTP listener instead of the transcoder (which can neither answer
# 304, pass precompressed bytes on, nor write SSE ids and heartbeats): (name, path regex, streaming).
READ_ROUTES = (
    ("read.seat_watch", r"/v1/events/[^/]+/seats:watch", True),
    ("read.seat_map", r"/v1/events/[^/]+/seats", False),
    ("read.event_page", r"/v1/events/[^/:]+", False),
    ("read.layout", r"/v1/layouts/[^/]+", False),
)
READ_CLUSTER = "event_http"
# Attempts after the first for a read the listener did not take (each waits for the cluster's connect timeout).
READ_RETRIES = 4
# Compressed at the edge (the read path's maps and pages arrive compressed already and pass untouched).
COMPRESSED_TYPES = ("application/json", "text/event-stream", "application/x-ndjson")
# Brotli's per-stream state is large (its window), so long-lived streams get gzip and only JSON gets brotli.
BROTLI_TYPES = ("application/json",)


def _read_routes(edge: EdgeTarget) -> list[dict[str, Any]]:
    if edge.read_upstream is None:
        return []
    routes = []
    for name, regex, streaming in READ_ROUTES:
        route: dict[str, Any] = {
            "cluster": READ_CLUSTER, "timeout": "0s" if streaming else UNARY_TIMEOUT,
            # Every read is a GET: a connection the listener could not accept in time (a reconnect storm fills its
            # accept queue) or that broke before any answer is tried again here, instead of a 503 that a browser's
            # EventSource takes as final.
            "retry_policy": {
                "retry_on": "connect-failure,reset",
                "num_retries": READ_RETRIES,
                "retry_back_off": {"base_interval": "0.2s", "max_interval": "2s"},
            },
        }
        if streaming:
            route["idle_timeout"] = STREAM_IDLE_TIMEOUT
        routes.append(
            {
                "name": name,
                "match": {"safe_regex": {"regex": regex}, "headers": [{"name": ":method", "string_match": {
                    "safe_regex": {"regex": "GET|HEAD"}}}]},
                "route": route,
                # Public reads: the per-address read budget, as the transcoded reads have.
                "metadata": {"filter_metadata": {_METADATA_NAMESPACE: route_budgets(RouteClass.READ)}},
                # The listener speaks REST itself: the transcoder must leave these requests alone.
                "typed_per_filter_config": {
                    _TRANSCODER: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}
                },
            }
        )
    return routes


def _read_jwt_rules(edge: EdgeTarget, public: dict[str, Any]) -> list[dict[str, Any]]:
    """The read routes keep their REST paths (untranscoded): public, like the event service's gRPC reads."""
    if edge.read_upstream is None:
        return []
    return [{"match": {"safe_regex": {"regex": regex}}, "requires": public} for _, regex, _ in READ_ROUTES]


def _read_clusters(edge: EdgeTarget) -> list[dict[str, Any]]:
    if edge.read_upstream is None:
        return []
    host, port = edge.read_upstream
    cluster: dict[str, Any] = {
        "name": READ_CLUSTER,
        "type": edge.cluster_discovery,
        # A reconnect storm opens thousands of upstream connections at once: give accepts time to catch up.
        "connect_timeout": "5s",
        "lb_policy": "ROUND_ROBIN",
        # HTTP/1.1 upstream (aiohttp); every open seat watch holds one connection, so no low ceilings.
        # Retries (see _read_routes) are bounded by a budget, a share of the requests in flight, rather than by
        # Envoy's default of 3 at a time, which a storm of thousands of reconnecting watchers would exhaust at once.
        "circuit_breakers": {
            "thresholds": [
                {"priority": "DEFAULT", "max_connections": 100_000, "max_pending_requests": 100_000,
                 "max_requests": 1_000_000,
                 "retry_budget": {"budget_percent": {"value": 50.0}, "min_retry_concurrency": 100}}
            ]
        },
        "load_assignment": {
            "cluster_name": READ_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _address(host, port)}}]}],
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": edge.health_check_interval,
                "no_traffic_interval": edge.health_check_interval,
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "http_health_check": {"path": "/healthz"},
            }
        ],
    }
    if edge.cluster_discovery == "STRICT_DNS":
        cluster.update({"dns_refresh_rate": "5s", "respect_dns_ttl": True, "dns_lookup_family": "V4_PREFERRED"})
    return [cluster]


def _compressor_filters() -> list[dict[str, Any]]:
    """brotli (preferred when a client accepts both) for JSON, gzip for JSON and streams. A response that is
    already encoded (the read path's precompressed maps) passes untouched."""

    def compressor(name: str, library: dict[str, Any], content_types: tuple[str, ...]) -> dict[str, Any]:
        return {
            "name": f"envoy.filters.http.compressor.{name}",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor",
                "response_direction_config": {
                    "common_config": {
                        "min_content_length": 256,
                        "content_type_matcher": [{"prefix": content_type} for content_type in content_types],
                    },
                },
                "compressor_library": {"name": name, "typed_config": library},
            },
        }

    return [
        compressor(
            "brotli",
            {"@type": "type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli",
             "quality": 5, "window_bits": 18},
            BROTLI_TYPES,
        ),
        compressor(
            "gzip",
            # A small window: every open stream keeps its compressor state for as long as it lives.
            {"@type": "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip",
             "compression_level": "BEST_SPEED", "memory_level": 5, "window_bits": 12},
            COMPRESSED_TYPES,
        ),
    ]


@dataclass(frozen=True)
class LocalReply:
    """How one HTTP status of Envoy's own replies reads as a google.rpc.Status."""

    status: int
    code: int  # google.rpc.Code for REST callers
    reason: str
    # gRPC callers get this message (grpc-message and the Status in grpc-status-details-bin must agree, so it is
    # fixed); REST callers get Envoy's own words (for example "Jwt is expired") unless rest_message is set.
    message: str
    grpc_code: int | None = None  # for native gRPC callers, when it differs (404 is UNIMPLEMENTED there)
    retry: bool = False  # a RetryInfo detail and a Retry-After header
    rest_message: str = "%LOCAL_REPLY_BODY%"


_TOO_MANY = f"too many requests: retry after {RETRY_AFTER_SECONDS} s"
# HTTP status of Envoy's own replies -> google.rpc.Code and ErrorInfo reason.
LOCAL_REPLIES = (
    LocalReply(400, 3, "INVALID_REQUEST", "the request is malformed"),
    LocalReply(401, 16, "UNAUTHENTICATED", "a valid token is required: missing, expired or not accepted"),
    LocalReply(403, 7, "PERMISSION_DENIED", "not allowed"),
    LocalReply(404, 5, "ROUTE_NOT_FOUND", "no such route", grpc_code=12),
    LocalReply(413, 3, "REQUEST_TOO_LARGE", "the request body is too large"),
    LocalReply(414, 3, "URI_TOO_LONG", "the URL is too long"),
    LocalReply(429, 8, "RATE_LIMITED", _TOO_MANY, retry=True, rest_message=_TOO_MANY),
    LocalReply(431, 3, "REQUEST_HEADERS_TOO_LARGE", "the request headers are too large"),
    LocalReply(503, 14, "UPSTREAM_UNAVAILABLE", "the service is unavailable: retry shortly"),
    LocalReply(504, 4, "UPSTREAM_TIMEOUT", "the service did not answer in time"),
)
_FALLBACK = LocalReply(0, 13, "EDGE_ERROR", "the edge failed")
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def _status_body(reply: LocalReply) -> dict[str, Any]:
    """A local reply as the JSON google.rpc.Status the services' errors are transcoded to."""
    details: list[dict[str, Any]] = [{"@type": _ERROR_INFO, "reason": reply.reason, "domain": "tix.dev"}]
    if reply.retry:
        details.append({"@type": _RETRY_INFO, "retryDelay": f"{RETRY_AFTER_SECONDS}s"})
    return {
        "json_format": {"code": reply.code, "message": reply.rest_message, "details": details},
        "content_type": "application/json",
    }


def grpc_status_details(reply: LocalReply) -> str:
    """The grpc-status-details-bin a native gRPC caller gets with Envoy's reply: the same Status, binary."""
    details = [error_details_pb2.ErrorInfo(reason=reply.reason, domain="tix.dev")]
    if reply.retry:
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_AFTER_SECONDS)))
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    status = status_pb2.Status(code=reply.grpc_code or reply.code, message=reply.message, details=packed)
    return base64.b64encode(status.SerializeToString()).decode().rstrip("=")


def _status_filter(status: int, op: str = "EQ") -> dict[str, Any]:
    key = f"local_reply_{status}" if op == "EQ" else f"local_reply_{op.lower()}_{status}"
    return {"status_code_filter": {"comparison": {"op": op, "value": {"default_value": status, "runtime_key": key}}}}


# A native gRPC call: gRPC content and no x-envoy-original-path, which the transcoder sets on the REST calls it turns
# into gRPC (Envoy strips x-envoy-* headers that clients send). Those get the JSON body like any REST call.
_GRPC_REQUEST = {
    "and_filter": {
        "filters": [
            {"header_filter": {"header": {"name": "content-type", "string_match": {"prefix": "application/grpc"}}}},
            {"header_filter": {"header": {"name": "x-envoy-original-path", "present_match": True, "invert_match": True}}},
        ]
    }
}


def _header(key: str, value: str) -> dict[str, Any]:
    return {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


def _local_reply_config() -> dict[str, Any]:
    """Envoy's own answers (401 from jwt_authn, 404, 413, 429, 503...) in the services' error shape: a JSON Status
    for REST callers; for gRPC callers (and REST calls already transcoded to gRPC, which the transcoder turns back
    into JSON from it) grpc-status with grpc-status-details-bin, the message as grpc-message."""
    mappers: list[dict[str, Any]] = []
    for reply in LOCAL_REPLIES:
        retry_after = [_header("retry-after", str(RETRY_AFTER_SECONDS))] if reply.retry else []
        mappers.append(
            {
                "filter": {"and_filter": {"filters": [*_GRPC_REQUEST["and_filter"]["filters"], _status_filter(reply.status)]}},
                "headers_to_add": [
                    _header("grpc-status", str(reply.grpc_code or reply.code)),
                    _header("grpc-status-details-bin", grpc_status_details(reply)),
                    *retry_after,
                ],
                "body_format_override": {"text_format_source": {"inline_string": reply.message}},
            }
        )
        mappers.append(
            {"filter": _status_filter(reply.status), "headers_to_add": retry_after, "body_format_override": _status_body(reply)}
        )
    for mapper in mappers:
        if not mapper["headers_to_add"]:
            del mapper["headers_to_add"]
    # Any other error status; not a body_format for every local reply, which would wrap the documents the edge
    # serves itself (direct responses are local replies too).
    mappers.append({"filter": _status_filter(400, "GE"), "body_format_override": _status_body(_FALLBACK)})
    return {"mappers": mappers}


def _access_log() -> dict[str, Any]:
    fields = {
        "time": "%START_TIME%",
        "method": "%REQ(X-ENVOY-ORIGINAL-METHOD?:METHOD)%",
        # The path and query as the client sent them, with a stream token's value blanked out (tix.request_line):
        # a token never lands in a log file.
        "path": f"%DYNAMIC_METADATA({_METADATA_NAMESPACE}:path)%",
        "route": "%ROUTE_NAME%",
        "status": "%RESPONSE_CODE%",
        "flags": "%RESPONSE_FLAGS%",
        "details": "%RESPONSE_CODE_DETAILS%",
        "duration_ms": "%DURATION%",
        "upstream": "%UPSTREAM_CLUSTER%",
        "bytes_in": "%BYTES_RECEIVED%",
        "bytes_out": "%BYTES_SENT%",
        "user": f"%REQ({USER_ID_METADATA})%",
        "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        "request_id": "%REQ(X-REQUEST-ID)%",
    }
    return {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": {"json_format": fields},
        },
    }
