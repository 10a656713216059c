"""The fans' web app as the edge serves it: hashed, precompressed files, an import map naming them, one route per
file and encoding; the development sign-in exists only outside production."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import brotli
import jwt
import pytest
import yaml

from tix.identity import JWT_AUDIENCE, JWT_ISSUER
from tix_dev.edge import render_config, write_k8s_web
from tix_dev.settings import REPO_ROOT, DevSettings
from tix_dev.signin import ProductionRefused, check_name, refuse_in_production, sign_in
from tix_dev.tokens import TokenSigner, ensure_dev_keys
from tix_dev.webapp import IMMUTABLE, REVALIDATE, WEB_SOURCE, WebConfig, build_web, render_index


def _routes(config: dict) -> list[dict]:
    listener = config["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    return manager["route_config"]["virtual_hosts"][0]["routes"]


def _index_config(index_html: str) -> dict:
    found = re.search(r'<script type="application/json" id="tix-config">(.*?)</script>', index_html, re.S)
    assert found
    return json.loads(found.group(1))


def test_assets_get_content_hashed_names_and_the_import_map_resolves_every_module(tmp_path):
    files = build_web(tmp_path / "web")
    index = (tmp_path / "web" / "index.html").read_text()
    importmap = json.loads(re.search(r'<script type="importmap">(.*?)</script>', index, re.S).group(1))["imports"]
    sources = sorted(p.name for p in (WEB_SOURCE / "assets").glob("*.js"))
    assert sorted(key.removeprefix("/assets/") for key in importmap) == sources
    served = {f.url_path for f in files}
    for plain, hashed in importmap.items():
        assert re.fullmatch(rf"{plain.removesuffix('.js')}\.[0-9a-f]{{10}}\.js", hashed)
        assert hashed in served
    assert "{{" not in index
    assert '<link rel="modulepreload" href="/assets/main.' in index


def test_a_changed_file_gets_a_new_name_and_an_unchanged_one_keeps_its_own(tmp_path):
    source = tmp_path / "src"
    (source / "assets").mkdir(parents=True)
    (source / "index.html").write_text('<script src="{{asset:a.js}}"></script>{{importmap}}')
    (source / "assets" / "a.js").write_text("export const a = 1;")
    (source / "assets" / "b.js").write_text("export const b = 1;")
    first = {f.url_path for f in build_web(tmp_path / "out", source=source)}
    (source / "assets" / "a.js").write_text("export const a = 2;")
    second = {f.url_path for f in build_web(tmp_path / "out", source=source)}
    assert len(first - second) == 1
    assert next(iter(first - second)).startswith("/assets/a.")
    assert [p for p in first & second if p.startswith("/assets/b.")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".js") == sorted(
        p.removeprefix("/assets/") for p in second if p != "/"
    )


def test_every_file_has_brotli_and_gzip_twins_of_the_same_bytes(tmp_path):
    for web_file in build_web(tmp_path / "web"):
        plain = web_file.file.read_bytes()
        assert brotli.decompress(web_file.encoded("br").read_bytes()) == plain
        assert gzip.decompress(web_file.encoded("gzip").read_bytes()) == plain


def test_the_first_load_is_far_below_200_kilobytes_compressed(tmp_path):
    files = build_web(tmp_path / "web")
    # Everything index.html preloads or links (every module, the stylesheet, the icon): an upper bound.
    assert sum(f.encoded("br").stat().st_size for f in files) < 200 * 1024


def test_an_unknown_placeholder_is_an_error_not_a_broken_page():
    with pytest.raises(ValueError, match=r"asset:missing\.js"):
        render_index("{{asset:missing.js}}", {}, WebConfig())


def test_the_local_edge_serves_each_file_per_encoding_with_its_cache_policy(tmp_path):
    config = yaml.safe_load(render_config("local", web_dir=tmp_path / "web"))
    routes = [r for r in _routes(config) if r["name"].startswith("web:")]
    by_name = {r["name"]: r for r in routes}
    index_br = by_name["web:/:br"]
    assert index_br["match"]["path"] == "/"
    assert {"name": "accept-encoding", "string_match": {"contains": "br"}} in index_br["match"]["headers"]
    headers = {h["header"]["key"]: h["header"]["value"] for h in index_br["response_headers_to_add"]}
    assert headers["content-encoding"] == "br"
    assert headers["cache-control"] == REVALIDATE
    assert index_br["direct_response"]["body"]["filename"] == str((tmp_path / "web" / "index.html.br").resolve())
    asset = next(r for r in routes if r["match"]["path"].startswith("/assets/main.") and r["name"].endswith(":identity"))
    headers = {h["header"]["key"]: h["header"]["value"] for h in asset["response_headers_to_add"]}
    assert headers["cache-control"] == IMMUTABLE
    assert "content-encoding" not in headers
    assert headers["content-type"].startswith("text/javascript")
    # Brotli is tried first, then gzip, then the plain bytes.
    names = [r["name"] for r in routes if r["match"]["path"] == "/"]
    assert names == ["web:/:br", "web:/:gzip", "web:/:identity"]


def test_development_has_the_sign_in_route_and_the_page_knows_it(tmp_path):
    config = yaml.safe_load(render_config("local", web_dir=tmp_path / "web", sign_in_port=18091))
    route = next(r for r in _routes(config) if r["name"] == "dev.signin")
    assert route["match"]["path"] == "/dev/signin"
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == route["route"]["cluster"])
    assert cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
        "port_value"] == 18091
    assert _index_config((tmp_path / "web" / "index.html").read_text())["devSignInPath"] == "/dev/signin"


def test_production_has_no_sign_in_route_and_the_page_offers_none(tmp_path, monkeypatch):
    monkeypatch.setenv("TIX_ENVIRONMENT", "production")
    config = yaml.safe_load(render_config("local", web_dir=tmp_path / "web"))
    assert not [r for r in _routes(config) if "signin" in r["name"] or r["match"].get("path") == "/dev/signin"]
    assert "dev_signin" not in {c["name"] for c in config["static_resources"]["clusters"]}
    assert _index_config((tmp_path / "web" / "index.html").read_text())["devSignInPath"] == ""
    with pytest.raises(ProductionRefused, match="does not exist in production"):
        refuse_in_production(DevSettings())


def test_the_kubernetes_edge_never_has_the_development_sign_in():
    text = render_config("k8s")
    assert "/dev/signin" not in text
    assert "dev_signin" not in text


@pytest.mark.parametrize("name", ["", "a b", "-leading", "x" * 65, 7, None, "new\nline"])
def test_sign_in_refuses_names_the_edge_would_refuse_as_subjects(name):
    assert check_name(name) is not None


def test_sign_in_turns_a_name_into_a_token_the_edge_verifies(tmp_path):
    private_path, jwks_path = ensure_dev_keys(tmp_path)
    status, answer = sign_in(TokenSigner(private_path), b'{"name": "alice"}')
    assert status == 200
    assert answer["userId"] == "alice"
    jwk = json.loads(jwks_path.read_text())["keys"][0]
    key = jwt.PyJWK(jwk).key
    claims = jwt.decode(answer["token"], key, algorithms=["RS256"], audience=JWT_AUDIENCE, issuer=JWT_ISSUER)
    assert claims["sub"] == "alice"
    assert claims["exp"] > claims["iat"]
    status, answer = sign_in(TokenSigner(private_path), b"not json")
    assert status == 400
    assert answer["details"][0]["reason"] == "INVALID_REQUEST"


def test_local_stripe_js_stand_in_is_shipped_beside_the_launcher():
    from tix_dev.localstripe import STRIPE_JS

    text = STRIPE_JS.read_text()
    assert "confirmCardPayment" in text
    assert "/_tix/payment_intents/" in text
    assert Path(STRIPE_JS).parent.name == "tix_dev"


def test_the_cluster_edge_serves_the_committed_build_of_the_app(tmp_path):
    """`tix edge config --target k8s` writes k8s/base/edge/web beside envoy.yaml; they must not drift from web/."""
    committed = REPO_ROOT / "k8s" / "base" / "edge" / "web"
    write_k8s_web(tmp_path / "web")
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "web").iterdir()}
    assert {p.name: p.read_bytes() for p in committed.iterdir()} == fresh, (
        "k8s/base/edge/web differs from web/: run `tix edge config --target k8s --output k8s/base/edge/envoy.yaml`"
    )
    config = yaml.safe_load(render_config("k8s"))
    served = {r["direct_response"]["body"]["filename"] for r in _routes(config) if r["name"].startswith("web:")}
    assert served == {f"/etc/tix/web/{name}" for name in fresh if name != "kustomization.yaml"}
    index = _index_config(fresh["index.html"].decode())
    assert index["stripeJsUrl"] == "https://js.stripe.com/v3/"
    assert index["devSignInPath"] == ""
