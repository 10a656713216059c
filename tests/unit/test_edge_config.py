"""The Envoy edge configuration as data: what the rendering promises, checked without starting Envoy."""

from __future__ import annotations

import base64

import yaml
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2, status_pb2

from tix_dev.edge import (
    LOCAL_ORIGINS,
    STREAM_USER_HEADER,
    EdgeLimits,
    RouteClass,
    http_routes,
    render_config,
    service_full_names,
)
from tix_dev.settings import DESCRIPTOR_PATH, REPO_ROOT

COMMITTED_K8S_CONFIG = REPO_ROOT / "k8s" / "base" / "edge" / "envoy.yaml"


def _manager(config: dict) -> dict:
    [listener] = config["static_resources"]["listeners"]
    [chain] = listener["filter_chains"]
    [manager] = chain["filters"]
    return manager["typed_config"]


def _filters(config: dict) -> dict[str, dict]:
    return {f["name"]: f["typed_config"] for f in _manager(config)["http_filters"]}


def _routes(config: dict) -> list[dict]:
    [host] = _manager(config)["route_config"]["virtual_hosts"]
    return host["routes"]


def test_committed_k8s_edge_config_matches_a_fresh_render():
    assert COMMITTED_K8S_CONFIG.read_text() == render_config("k8s"), (
        "k8s/base/edge/envoy.yaml is stale: run `tix edge config --target k8s --output k8s/base/edge/envoy.yaml`"
    )


def test_k8s_edge_reaches_services_by_dns_and_reads_mounted_files():
    config = yaml.safe_load(render_config("k8s"))
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert set(clusters) == {"event", "search", "booking", "queue", "event_http"}
    for name, cluster in clusters.items():
        assert cluster["type"] == "STRICT_DNS"
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        assert address["socket_address"]["address"] == f"{name.removesuffix('_http')}-svc"
    assert clusters["event_http"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["port_value"] == 50061
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    assert listener == {"address": "0.0.0.0", "port_value": 8080}
    filters = _filters(config)
    assert filters["envoy.filters.http.grpc_json_transcoder"]["proto_descriptor"] == "/etc/tix/descriptor/tix.pb"
    provider = filters["envoy.filters.http.jwt_authn"]["providers"]["tix"]
    assert provider["local_jwks"]["filename"] == "/etc/tix/jwks/jwks.json"


def test_local_edge_takes_ports_and_paths_from_the_caller(tmp_path):
    config = yaml.safe_load(
        render_config(
            "local", listen_port=18080, admin_port=19901, service_ports={"event": 25051}, jwks_path=tmp_path / "j.json"
        )
    )
    assert config["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 19901}
    ports = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        for c in config["static_resources"]["clusters"]
    }
    assert ports["event"] == {"address": "127.0.0.1", "port_value": 25051}
    assert ports["booking"]["port_value"] == 50053
    provider = _filters(config)["envoy.filters.http.jwt_authn"]["providers"]["tix"]
    assert provider["local_jwks"]["filename"] == str(tmp_path / "j.json")


def test_transcoder_serves_every_service_with_the_public_json_mapping():
    transcoder = _filters(yaml.safe_load(render_config("k8s")))["envoy.filters.http.grpc_json_transcoder"]
    assert transcoder["services"] == sorted({route.service for route in http_routes()})
    assert len(transcoder["services"]) == 4
    assert transcoder["convert_grpc_status"] is True
    options = transcoder["print_options"]
    assert options["always_print_primitive_fields"] is True
    assert options["always_print_enums_as_ints"] is False
    assert options["preserve_proto_field_names"] is False
    assert transcoder["request_validation_options"]["reject_unknown_method"] is True


def test_browsers_get_server_sent_events_and_other_clients_newline_delimited_json():
    config = yaml.safe_load(render_config("k8s"))
    assert _filters(config)["envoy.filters.http.grpc_json_transcoder"]["print_options"]["stream_newline_delimited"]
    [sse_route] = [r for r in _routes(config) if r["name"] == "rest-sse"]
    assert sse_route["match"]["headers"] == [{"name": "accept", "string_match": {"contains": "text/event-stream"}}]
    options = sse_route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["print_options"]
    assert options["stream_sse_style_delimited"] is True
    assert options["stream_newline_delimited"] is False


def test_streams_have_no_timeout_and_unary_calls_do():
    routes = {r["name"]: r for r in _routes(yaml.safe_load(render_config("k8s")))}
    streaming = [route for route in http_routes() if route.server_streaming]
    assert {f"{r.service}.{r.method}" for r in streaming} == {
        "tix.v1.EventService.WatchSeats", "tix.v1.QueueService.WatchQueue"
    }
    for route in http_routes():
        entry = routes[route.name]
        assert entry["match"] == {"path": route.grpc_path}
        assert entry["route"]["timeout"] == ("0s" if route.server_streaming else "15s")


def test_only_methods_with_an_http_route_are_routed_and_admin_services_never(tmp_path):
    """Native gRPC callers reach exactly the public methods; an AdminService is left out by rule, whatever its
    annotations say."""
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes())
    tix_file = next(f for f in files.file if f.package == "tix.v1" and f.service)
    admin = tix_file.service.add(name="EventAdminService")
    method = admin.method.add(name="CancelEvent", input_type=".tix.v1.GetEventRequest", output_type=".tix.v1.Event")
    method.options.Extensions[annotations_pb2.http].post = "/v1/admin/events/{event_id}:cancel"
    descriptor = tmp_path / "with-admin.pb"
    descriptor.write_bytes(files.SerializeToString())
    assert all("Admin" not in route.service for route in http_routes(descriptor))
    assert len(http_routes(descriptor)) == len(http_routes())
    names = [r["name"] for r in _routes(yaml.safe_load(render_config("k8s")))]
    assert not [name for name in names if "Admin" in name]
    # No per-service prefix: a method without an HTTP binding has no route (404, UNIMPLEMENTED for gRPC callers).
    assert all(not r["match"].get("prefix", "").startswith("/tix.v1.") for r in _routes(yaml.safe_load(render_config("k8s"))))


def test_routes_are_classified_by_rule():
    full_names = service_full_names()
    classes = {route.name: route.route_class(full_names) for route in http_routes()}
    assert classes["tix.v1.BookingService.HandleStripeWebhook"] is RouteClass.WEBHOOK
    assert classes["tix.v1.EventService.GetEvent"] is RouteClass.READ
    assert classes["tix.v1.SearchService.SearchEvents"] is RouteClass.READ
    assert classes["tix.v1.BookingService.ReserveSeats"] is RouteClass.FAN
    assert classes["tix.v1.QueueService.WatchQueue"] is RouteClass.FAN
    assert classes["tix.v1.QueueService.CreateStreamToken"] is RouteClass.FAN


def test_client_sent_identity_headers_are_removed_before_any_jwt_is_checked():
    names = [f["name"] for f in _manager(yaml.safe_load(render_config("k8s")))["http_filters"]]
    assert names.index("envoy.filters.http.header_mutation") < names.index("tix.stream_tokens")
    assert names.index("tix.stream_tokens") < names.index("envoy.filters.http.grpc_json_transcoder")
    assert names.index("envoy.filters.http.grpc_json_transcoder") < names.index("envoy.filters.http.jwt_authn")
    mutation = _filters(yaml.safe_load(render_config("k8s")))["envoy.filters.http.header_mutation"]
    assert mutation["mutations"]["request_mutations"] == [{"remove": "x-user-id"}, {"remove": STREAM_USER_HEADER}]
    assert names[-1] == "envoy.filters.http.router"
    # CORS answers preflights before limits and tokens are looked at.
    assert names.index("envoy.filters.http.cors") < names.index("envoy.filters.http.local_ratelimit")


def test_fans_need_a_verified_user_while_reads_and_webhooks_are_public():
    jwt = _filters(yaml.safe_load(render_config("k8s")))["envoy.filters.http.jwt_authn"]
    provider = jwt["providers"]["tix"]
    assert provider["claim_to_headers"] == [{"header_name": "x-user-id", "claim_name": "sub"}]
    assert provider["require_expiration"] is True
    assert provider["subjects"]["safe_regex"]["regex"].startswith("^[A-Za-z0-9]")
    assert provider["from_headers"] == [{"name": "Authorization", "value_prefix": "Bearer "}]  # never a URL
    rules = {rule["match"]["path"]: rule.get("requires") for rule in jwt["rules"] if "path" in rule["match"]}
    # The read path's REST routes (untranscoded, matched by their REST paths) are public too.
    read_rules = [rule for rule in jwt["rules"] if "safe_regex" in rule["match"]]
    assert read_rules
    assert all({"allow_missing_or_failed": {}} in r["requires"]["requires_any"]["requirements"] for r in read_rules)
    verified = {"provider_name": "tix"}
    assert rules["/tix.v1.BookingService/HandleStripeWebhook"] is None
    assert rules["/tix.v1.BookingService/ReserveSeats"] == verified
    assert rules["/tix.v1.QueueService/JoinQueue"] == verified
    assert rules["/tix.v1.QueueService/CreateStreamToken"] == verified
    # A queue watch may come with a stream token instead (verified before the transcoder); the service still
    # refuses a call without a user.
    assert {"allow_missing": {}} in rules["/tix.v1.QueueService/WatchQueue"]["requires_any"]["requirements"]
    for path in ("/tix.v1.EventService/GetEvent", "/tix.v1.SearchService/SearchEvents"):
        assert {"allow_missing_or_failed": {}} in rules[path]["requires_any"]["requirements"]


def test_stream_tokens_are_read_from_the_query_of_stream_routes_only():
    config = yaml.safe_load(render_config("k8s"))
    stream = _filters(config)["tix.stream_tokens"]
    provider = stream["providers"]["tix_stream"]
    assert provider["from_params"] == ["access_token"]
    assert provider["audiences"] == ["tix-streams"]
    assert provider["require_expiration"] is True
    assert provider["max_lifetime"] == "3600s"
    assert provider["local_jwks"]["filename"] == "/etc/tix/stream-jwks/jwks.json"
    regexes = sorted(rule["match"]["safe_regex"]["regex"] for rule in stream["rules"])
    assert regexes == ["^/v1/events/[^/]+/queue/[^/]+:watch$", "^/v1/events/[^/]+/seats:watch$"]
    transcoder = _filters(config)["envoy.filters.http.grpc_json_transcoder"]
    assert transcoder["ignored_query_parameters"] == ["access_token"]
    log_format = _manager(config)["access_log"][0]["typed_config"]["log_format"]["json_format"]
    assert log_format["path"] == "%DYNAMIC_METADATA(tix.edge:path)%"
    assert "REDACTED" in _filters(config)["tix.request_line"]["default_source_code"]["inline_string"]


def _mappers(config: dict) -> list[dict]:
    return _manager(config)["local_reply_config"]["mappers"]


def _status_of(mapper: dict) -> int:
    found = mapper["filter"].get("status_code_filter") or next(
        f["status_code_filter"] for f in mapper["filter"]["and_filter"]["filters"] if "status_code_filter" in f
    )
    return found["comparison"]["value"]["default_value"]


def test_envoy_replies_are_json_statuses_for_rest_and_status_details_for_grpc():
    *mappers, fallback = _mappers(yaml.safe_load(render_config("k8s")))
    assert fallback["filter"]["status_code_filter"]["comparison"]["op"] == "GE"  # errors only: not the documents
    assert fallback["body_format_override"]["json_format"]["code"] == 13
    rest = {_status_of(m): m for m in mappers if "status_code_filter" in m["filter"]}
    grpc = {_status_of(m): m for m in mappers if "and_filter" in m["filter"]}
    assert set(rest) == set(grpc) == {400, 401, 403, 404, 413, 414, 429, 431, 503, 504}
    codes = {status: m["body_format_override"]["json_format"]["code"] for status, m in rest.items()}
    assert (codes[401], codes[404], codes[429], codes[400], codes[413]) == (16, 5, 8, 3, 3)
    for mapper in rest.values():
        body = mapper["body_format_override"]
        assert body["content_type"] == "application/json"
        assert body["json_format"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert rest[429]["body_format_override"]["json_format"]["details"][1] == {
        "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"
    }
    assert {"header": {"key": "retry-after", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"} in rest[
        429
    ]["headers_to_add"]
    for status, mapper in grpc.items():
        headers = {h["header"]["key"]: h["header"]["value"] for h in mapper["headers_to_add"]}
        raw = headers["grpc-status-details-bin"]
        decoded = status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))
        assert str(decoded.code) == headers["grpc-status"]
        # grpc-message and the Status message must agree, or gRPC clients refuse the details.
        assert decoded.message == mapper["body_format_override"]["text_format_source"]["inline_string"]
        info = error_details_pb2.ErrorInfo()
        assert decoded.details[0].Unpack(info)
        assert info.domain == "tix.dev"
        if status == 429:
            retry = error_details_pb2.RetryInfo()
            assert decoded.details[1].Unpack(retry)
            assert retry.retry_delay.seconds == 1
    assert grpc[404]["headers_to_add"][0]["header"]["value"] == "12"  # UNIMPLEMENTED for an unknown method


def test_every_route_draws_from_the_budgets_of_its_class():
    config = yaml.safe_load(render_config("k8s"))
    limiter = _filters(config)["tix.ratelimit"]
    budgets = {d["entries"][0]["value"]: d for d in limiter["descriptors"]}
    assert set(budgets) == {"read-ip", "fan-user", "fan-ip", "webhook"}
    assert budgets["fan-user"]["entries"][1] == {"key": "user"}  # a bucket per fan
    assert budgets["fan-ip"]["entries"][1] == {"key": "remote_address"}  # and per client address
    assert budgets["webhook"]["token_bucket"]["max_tokens"] == EdgeLimits().webhook.burst
    routes = {r["name"]: r for r in _routes(config)}
    full_names = service_full_names()
    for route in http_routes():
        metadata = routes[route.name]["metadata"]["filter_metadata"]["tix.edge"]
        expected = {
            RouteClass.READ: {"per_address": "read-ip"},
            RouteClass.FAN: {"per_user": "fan-user", "per_address": "fan-ip"},
            RouteClass.WEBHOOK: {"shared": "webhook"},
        }[route.route_class(full_names)]
        assert metadata == expected, route.name
    defaults = EdgeLimits()
    assert defaults.fan_per_user.burst < defaults.fan_per_ip.burst < defaults.read_per_ip.burst
    assert all(getattr(EdgeLimits.unlimited(), name).burst >= 10_000_000 for name in ("edge", "fan_per_user"))


def test_limits_on_sizes():
    config = yaml.safe_load(render_config("k8s"))
    assert _manager(config)["max_request_headers_kb"] == 32
    assert _filters(config)["envoy.filters.http.buffer"]["max_request_bytes"] == 64 * 1024
    webhook = next(r for r in _routes(config) if r["name"] == "rest:tix.v1.BookingService.HandleStripeWebhook")
    per_route = webhook["typed_per_filter_config"]["envoy.filters.http.buffer"]["buffer"]
    assert per_route["max_request_bytes"] == EdgeLimits().max_webhook_body_bytes
    assert "#path > 4096" in _filters(config)["tix.request_line"]["default_source_code"]["inline_string"]


def test_cors_allows_loopback_origins_locally_and_only_configured_ones_in_the_cluster():
    def policy(text: str) -> dict:
        [host] = _manager(yaml.safe_load(text))["route_config"]["virtual_hosts"]
        return host["typed_per_filter_config"]["envoy.filters.http.cors"]

    assert policy(render_config("k8s"))["allow_origin_string_match"] == []
    local = policy(render_config("local"))
    assert local["allow_origin_string_match"] == [{"safe_regex": {"regex": LOCAL_ORIGINS[0]}}]
    assert local["allow_credentials"] is False
    assert "authorization" in local["allow_headers"]
    assert "retry-after" in local["expose_headers"]


def test_the_openapi_document_is_served_by_the_edge_without_transcoding():
    routes = {r["name"]: r for r in _routes(yaml.safe_load(render_config("k8s")))}
    openapi = routes["openapi"]
    assert openapi["match"]["path"] == "/openapi.json"
    assert openapi["direct_response"]["body"]["filename"] == "/etc/tix/openapi/openapi.json"
    assert openapi["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["disabled"] is True
    assert routes["reference"]["direct_response"]["body"]["filename"] == "/etc/tix/openapi/openapi.html"


def test_the_read_routes_reach_the_event_services_http_listener_untranscoded():
    config = yaml.safe_load(render_config("k8s"))
    routes = {r["name"]: r for r in _routes(config)}
    names = [r["name"] for r in _routes(config)]
    for name in ("read.seat_watch", "read.seat_map", "read.event_page", "read.layout"):
        route = routes[name]
        assert route["route"]["cluster"] == "event_http"
        disabled = route["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]
        assert disabled["disabled"] is True
        # Before the REST catch-alls that hand everything else to the transcoder.
        assert names.index(name) < names.index("rest-sse")
    assert routes["read.seat_watch"]["route"]["timeout"] == "0s"
    # The per-address budget of public reads, as the transcoded reads have.
    assert routes["read.seat_map"]["metadata"]["filter_metadata"]["tix.edge"] == {"per_address": "read-ip"}
    # The watch route is matched before the map's, which would otherwise not match ":watch" anyway.
    assert names.index("read.seat_watch") < names.index("read.seat_map")


def test_reads_the_listener_could_not_accept_are_retried_within_a_budget_not_answered_503():
    config = yaml.safe_load(render_config("k8s"))
    routes = {r["name"]: r for r in _routes(config)}
    for name in ("read.seat_watch", "read.seat_map", "read.event_page", "read.layout"):
        policy = routes[name]["route"]["retry_policy"]
        assert set(policy["retry_on"].split(",")) == {"connect-failure", "reset"}
        assert policy["num_retries"] >= 3
    (cluster,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "event_http"]
    (thresholds,) = cluster["circuit_breakers"]["thresholds"]
    # Not Envoy's default of three retries at a time, which a reconnect storm exhausts at once.
    assert "max_retries" not in thresholds
    assert thresholds["retry_budget"]["min_retry_concurrency"] >= 100


def test_json_and_streams_are_compressed_at_the_edge_before_the_transcoder_writes_them():
    config = yaml.safe_load(render_config("k8s"))
    http_filters = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "http_filters"]
    names = [f["name"] for f in http_filters]
    assert names.index("envoy.filters.http.compressor.brotli") < names.index("envoy.filters.http.grpc_json_transcoder")
    assert names.index("envoy.filters.http.compressor.gzip") < names.index("envoy.filters.http.grpc_json_transcoder")
    by_name = {f["name"]: f["typed_config"] for f in http_filters}

    def types(name: str) -> set[str]:
        common = by_name[name]["response_direction_config"]["common_config"]
        return {matcher["prefix"] for matcher in common["content_type_matcher"]}

    assert types("envoy.filters.http.compressor.gzip") == {
        "application/json", "text/event-stream", "application/x-ndjson"}
    assert types("envoy.filters.http.compressor.brotli") == {"application/json"}


def test_the_operators_admin_service_is_in_the_contracts_but_never_on_the_edge():
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_PATH.read_bytes())
    services = {f"{f.package}.{s.name}" for f in files.file for s in f.service}
    assert "tix.v1.AdminService" in services
    assert not [route for route in http_routes() if route.service == "tix.v1.AdminService"]
    for target in ("local", "k8s"):
        config = yaml.safe_load(render_config(target))
        clusters = {cluster["name"] for cluster in config["static_resources"]["clusters"]}
        assert "admin" not in clusters, f"{target}: the edge has a way to the admin service"
        assert "tix.v1.AdminService" not in _filters(config)["envoy.filters.http.grpc_json_transcoder"]["services"]
        assert not [r for r in _routes(config) if "AdminService" in str(r["match"])]
