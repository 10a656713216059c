"""The Envoy edge configuration as data: what the rendering promises, checked without starting Envoy."""

from __future__ import annotations

import yaml

from tix_dev.edge import http_routes, render_config
from tix_dev.settings import REPO_ROOT

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
    assert set(clusters) == {"event", "search", "booking", "queue"}
    for name, cluster in clusters.items():
        assert cluster["type"] == "STRICT_DNS"
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        assert address["socket_address"]["address"] == f"{name}-svc"
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
    for route in streaming:
        entry = routes[f"{route.service}.{route.method}"]
        assert entry["match"] == {"path": route.grpc_path}
        assert entry["route"]["timeout"] == "0s"
    for service in ("tix.v1.EventService", "tix.v1.SearchService", "tix.v1.BookingService", "tix.v1.QueueService"):
        assert routes[service]["match"] == {"prefix": f"/{service}/"}
        assert routes[service]["route"]["timeout"] == "15s"
    # Stream routes come before their service's prefix route, or the prefix would catch them with its timeout.
    names = list(routes)
    assert names.index("tix.v1.EventService.WatchSeats") < names.index("tix.v1.EventService")


def test_client_sent_user_header_is_removed_before_the_jwt_is_checked():
    names = [f["name"] for f in _manager(yaml.safe_load(render_config("k8s")))["http_filters"]]
    assert names.index("envoy.filters.http.header_mutation") < names.index("envoy.filters.http.jwt_authn")
    mutation = _filters(yaml.safe_load(render_config("k8s")))["envoy.filters.http.header_mutation"]
    assert mutation["mutations"]["request_mutations"] == [{"remove": "x-user-id"}]
    assert names[-1] == "envoy.filters.http.router"


def test_queue_and_booking_need_a_verified_user_while_reads_and_the_stripe_webhook_are_public():
    jwt = _filters(yaml.safe_load(render_config("k8s")))["envoy.filters.http.jwt_authn"]
    assert jwt["providers"]["tix"]["claim_to_headers"] == [{"header_name": "x-user-id", "claim_name": "sub"}]
    rules = [(rule["match"], rule.get("requires")) for rule in jwt["rules"]]
    verified = {"provider_name": "tix"}
    assert rules[0] == ({"path": "/tix.v1.BookingService/HandleStripeWebhook"}, None)
    assert ({"prefix": "/tix.v1.BookingService/"}, verified) in rules
    assert ({"prefix": "/tix.v1.QueueService/"}, verified) in rules
    for service in ("EventService", "SearchService"):
        requirement = next(req for match, req in rules if match == {"prefix": f"/tix.v1.{service}/"})
        assert {"allow_missing_or_failed": {}} in requirement["requires_any"]["requirements"]


def test_envoy_replies_are_json_statuses():
    reply = _manager(yaml.safe_load(render_config("k8s")))["local_reply_config"]
    codes = {
        m["filter"]["status_code_filter"]["comparison"]["value"]["default_value"]: m["body_format_override"]
        for m in reply["mappers"]
    }
    assert codes[401]["json_format"]["code"] == 16
    assert codes[404]["json_format"]["code"] == 5
    assert codes[429]["json_format"]["code"] == 8
    assert codes[400]["json_format"]["code"] == 3
    for body in codes.values():
        assert body["content_type"] == "application/json"
        assert body["json_format"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"


def test_booking_routes_have_a_tighter_rate_limit_than_the_edge():
    config = yaml.safe_load(render_config("k8s"))
    edge_bucket = _filters(config)["envoy.filters.http.local_ratelimit"]["token_bucket"]
    routes = {r["name"]: r for r in _routes(config)}
    booking_limit = routes["tix.v1.BookingService"]["typed_per_filter_config"]["tix.booking_ratelimit"]
    assert booking_limit["token_bucket"]["max_tokens"] < edge_bucket["max_tokens"]
    assert booking_limit["filter_enforced"]["default_value"]["numerator"] == 100
