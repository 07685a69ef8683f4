"""Browser-facing protection: cross-site requests, CORS, security headers, auth of every method, no server paths,
and the error answers in the OpenAPI schema."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pixlearn.serve.app import create_app
from pixlearn.serve.security import PAGE_CSP, hide_paths, normalize_origin
from tests.serve.conftest import colour_image, png_bytes

EVIL = "https://evil.example"
OWN = "http://testserver"  # TestClient's base URL: its requests carry Host: testserver


def _zip() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in ("red", "blue"):
            for i in range(4):
                zf.writestr(f"{c}/{i}.png", png_bytes(colour_image(c, rng, size=16)))
    return buf.getvalue()


def _png() -> bytes:
    return png_bytes(colour_image("red", np.random.default_rng(1), size=16))


@pytest.fixture
def app_client(settings) -> Iterator:
    """A client factory: ``app_client(**settings_update)``; training_workers=0 so jobs only queue."""
    opened: list[TestClient] = []

    def make(**update) -> TestClient:
        c = TestClient(create_app(settings.model_copy(update={"training_workers": 0, **update})))
        c.__enter__()
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


# --------------------------------------------------------------------------- cross-site requests
def test_a_cross_site_training_upload_is_refused_and_creates_no_job(app_client) -> None:
    c = app_client()
    r = c.post("/v1/trainings", headers={"Origin": EVIL},
               files={"archive": ("colours.zip", _zip(), "application/zip")}, data={"epochs": "1"})
    assert r.status_code == 403, r.text
    err = r.json()["error"]
    assert err["code"] == "cross_site_request" and EVIL in err["message"] and "--cors-origin" in err["message"]
    assert c.get("/v1/trainings").json()["trainings"] == []
    # The same upload from the server's own page, or from a program (no Origin), is accepted.
    for headers in ({"Origin": OWN}, {}):
        r = c.post("/v1/trainings", headers=headers, files={"archive": ("colours.zip", _zip(), "application/zip")},
                   data={"epochs": "1"})
        assert r.status_code == 202, r.text
    assert len(c.get("/v1/trainings").json()["trainings"]) == 2


@pytest.mark.parametrize("headers", [
    {"Origin": EVIL},
    {"Origin": "null"},  # a sandboxed iframe or a file:// page
    {"Origin": "http://testserver:8080"},  # another port is another origin
    {"Origin": "https://testserver"},  # another scheme too
    {"Sec-Fetch-Site": "cross-site"},  # a browser that sent no Origin
    {"Sec-Fetch-Site": "same-site"},
])
def test_state_changing_requests_from_other_sites_are_403_on_every_route(app_client, headers) -> None:
    c = app_client()
    for method, path, shape in (("POST", "/v1/analyze", "v1"), ("POST", "/v1/ops/gaussian", "v1"),
                                ("DELETE", "/v1/models/x", "v1"), ("PUT", "/v1/models", "v1"),
                                ("PATCH", "/v1/trainings/x", "v1"), ("POST", "/v2/models/x/infer", "v2")):
        r = c.request(method, path, headers=headers, files={"file": ("a.png", _png(), "image/png")})
        assert r.status_code == 403, (method, path, r.text)
        body = r.json()
        if shape == "v1":
            assert body["error"]["code"] == "cross_site_request"
        else:  # the inference protocol's own shape
            assert isinstance(body["error"], str) and "--cors-origin" in body["error"]
        assert "access-control-allow-origin" not in r.headers


def test_reads_and_same_origin_or_origin_less_writes_pass(app_client) -> None:
    c = app_client()
    assert c.post("/v1/analyze", headers={"Origin": OWN, "Sec-Fetch-Site": "same-origin"},
                  files={"file": ("a.png", _png(), "image/png")}).status_code == 200
    assert c.post("/v1/analyze", headers={"Sec-Fetch-Site": "none"},  # typed into the address bar, a bookmark
                  files={"file": ("a.png", _png(), "image/png")}).status_code == 200
    r = c.get("/v1/models", headers={"Origin": EVIL})  # a read changes nothing; without CORS the page cannot see it
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    # The Host header's name and the default port are compared canonically.
    r = c.post("/v1/analyze", headers={"Origin": "http://LOCALHOST", "Host": "localhost:80"},
               files={"file": ("a.png", _png(), "image/png")})
    assert r.status_code == 200, r.text


def test_an_allowed_origin_gets_cors_answers_and_its_preflight_needs_no_key(app_client) -> None:
    allowed = "http://localhost:5173"
    c = app_client(cors_origins=[allowed + "/"], api_keys=["k"])
    pre = c.options("/v1/analyze", headers={"Origin": allowed, "Access-Control-Request-Method": "POST",
                                            "Access-Control-Request-Headers": "x-api-key, content-type"})
    assert pre.status_code == 200, pre.text
    assert pre.headers["access-control-allow-origin"] == allowed
    assert "POST" in pre.headers["access-control-allow-methods"]
    assert "x-api-key" in pre.headers["access-control-allow-headers"].lower()
    # The real request still needs the key...
    r = c.post("/v1/analyze", headers={"Origin": allowed}, files={"file": ("a.png", _png(), "image/png")})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == allowed
    r = c.post("/v1/analyze", headers={"Origin": allowed, "X-API-Key": "k"}, files={"file": ("a.png", _png(), "image/png")})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == allowed
    # ...and another origin gets neither CORS answers nor its writes through.
    pre = c.options("/v1/analyze", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 401 and "access-control-allow-origin" not in pre.headers
    r = c.post("/v1/analyze", headers={"Origin": EVIL, "X-API-Key": "k"}, files={"file": ("a.png", _png(), "image/png")})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


def test_origins_are_checked_when_the_server_starts() -> None:
    from pixlearn.serve.settings import ServeSettings

    assert normalize_origin("HTTPS://App.Example.com:443/") == "https://app.example.com"
    assert ServeSettings(cors_origins=["http://a.example", "http://A.example/"]).cors_origins == ["http://a.example"]
    for bad in ("*", "a.example", "ftp://a.example", "http://a.example/path", "http://a.example:99999", "null"):
        with pytest.raises(ValueError, match="--cors-origin"):
            ServeSettings(cors_origins=[bad])


def test_the_cli_refuses_a_bad_cors_origin_before_listening(tmp_path, capsys) -> None:
    from pixlearn.cli import main

    code = main(["serve", "--storage", str(tmp_path), "--port", "0", "--cors-origin", "*"])
    err = capsys.readouterr().err
    assert code == 2 and "--cors-origin" in err and "list the origins" in err, err


# --------------------------------------------------------------------------- every method needs the key
def test_options_and_head_need_the_key_like_every_method(app_client) -> None:
    c = app_client(api_keys=["k"])
    for method in ("OPTIONS", "HEAD", "GET", "POST", "DELETE"):
        r = c.request(method, "/v1/models")
        assert r.status_code == 401, (method, r.status_code)
    assert c.request("OPTIONS", "/v1/models", headers={"X-API-Key": "k"}).status_code == 405  # no such method, past auth
    # A preflight from an origin not allowed is an ordinary OPTIONS request: it needs the key too.
    r = c.options("/v1/models", headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"})
    assert r.status_code == 401


# --------------------------------------------------------------------------- headers on every answer
def test_security_headers_on_every_answer(app_client) -> None:
    c = app_client(api_keys=["k"], max_body_mb=0.001)
    answers = {
        "page": c.get("/"),
        "script": c.get("/static/app.js"),
        "health": c.get("/v1/health"),
        "401": c.get("/v1/models"),
        "404": c.get("/v1/nothing", headers={"X-API-Key": "k"}),
        "413": c.post("/v1/analyze", headers={"X-API-Key": "k"}, content=b"x" * 5000),
        "403": c.post("/v1/analyze", headers={"Origin": EVIL}),
        "docs": c.get("/docs"),
        "redoc": c.get("/redoc"),
        "openapi": c.get("/openapi.json"),
    }
    for name, r in answers.items():
        assert r.headers.get("x-content-type-options") == "nosniff", name
        assert r.headers.get("referrer-policy") == "no-referrer", name
        assert r.headers.get("x-frame-options") == "DENY", name
        csp = r.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, (name, csp)
    assert answers["page"].headers["content-security-policy"] == PAGE_CSP
    assert "'unsafe-inline'" not in PAGE_CSP and "'unsafe-eval'" not in PAGE_CSP
    assert answers["413"].status_code == 413 and answers["403"].status_code == 403


def test_the_docs_pages_load_nothing_from_elsewhere_and_allow_their_inline_script_by_hash(app_client) -> None:
    import base64
    import hashlib
    import re

    c = app_client()
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        r = c.get(path)
        assert r.status_code == 200
        assert "http://" not in r.text and "https://" not in r.text, path  # no CDN, no fonts service
        csp = r.headers["content-security-policy"]
        script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
        for inline in re.findall(r"<script>(.*?)</script>", r.text, re.S):
            digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in script_src, path
        for src in re.findall(r'(?:src|href)="([^"]+)"', r.text):
            assert src.startswith("/static/vendor/"), src
            assert c.get(src).status_code == 200, src


# --------------------------------------------------------------------------- no server paths in answers
def test_no_server_path_in_health_models_or_errors(app_client, trained_run, settings, tmp_path) -> None:
    c = app_client(models=[trained_run], allowed_roots=[tmp_path])
    hidden = [str(trained_run.resolve().parent), str(settings.storage.resolve()), str(tmp_path)]
    answers = [c.get("/v1/health"), c.get("/v1/models"), c.get("/v1/models/colours"), c.get("/v2/models/colours"),
               c.post("/v1/analyze", json={"image": {"path": "/etc/hostname"}})]
    for r in answers:
        assert r.status_code < 500, r.text
        for path in hidden:
            assert path not in r.text, (r.url, path, r.text)


def test_a_training_job_and_its_log_show_no_server_path(app_client, settings) -> None:
    import sys

    c = app_client()
    job = c.post("/v1/trainings", files={"archive": ("colours.zip", _zip(), "application/zip")}).json()
    storage = str(settings.storage.resolve())
    jobs = c.app.state.jobs
    job_dir = settings.storage / "trainings" / job["id"]
    (job_dir / "worker.log").write_text(f'  File "{sys.prefix}/lib/python3/site-packages/x.py", line 1\n'
                                        f"succeeded: {storage}/models/colours-{job['id'][:8]}\n")
    jobs._set(job["id"], {"error": f"cannot write {storage}/models/colours: disk full"})
    log = c.get(f"/v1/trainings/{job['id']}/log").text
    assert storage not in log and sys.prefix not in log
    assert f"succeeded: <storage>/models/colours-{job['id'][:8]}" in log and '"<python>/lib/python3' in log
    shown = c.get(f"/v1/trainings/{job['id']}").json()
    assert shown["error"] == "cannot write <storage>/models/colours: disk full"
    assert storage not in c.get("/v1/trainings").text


def test_hide_paths_replaces_storage_python_and_named_folders() -> None:
    import sys

    text = f"/srv/px/trainings/1/data ok; {sys.prefix}/lib/x.py; /data/runs/pets/weights: gone"
    out = hide_paths(text, "/srv/px", extra=[("/data/runs/pets", "pets")])
    assert out == "<storage>/trainings/1/data ok; <python>/lib/x.py; pets/weights: gone"


# --------------------------------------------------------------------------- error answers in the schema
def test_every_operation_documents_its_error_answers_with_the_error_schema(app_client) -> None:
    schema = app_client().get("/openapi.json").json()
    schemas = schema["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message"}
    assert schemas["OIPErrorBody"]["properties"]["error"]["type"] == "string"
    assert "HTTPValidationError" not in schemas  # validation errors are reshaped: FastAPI's own model would lie
    ops = [(p, m, op) for p, item in schema["paths"].items() for m, op in item.items()]
    assert len(ops) >= 20
    for path, method, op in ops:
        errors = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}
        open_route = path in ("/v1/health", "/v2/health/live", "/v2/health/ready")  # no key, no limits
        assert errors or open_route, (method, path)
        if not open_route:
            assert any(400 <= s < 500 for s in errors), (method, path)
        want = "#/components/schemas/" + ("OIPErrorBody" if path.startswith("/v2") else "ErrorBody")
        for status, answer in errors.items():
            assert answer["content"]["application/json"]["schema"] == {"$ref": want}, (method, path, status)
            assert answer["description"]
        if method in ("post", "put", "patch", "delete"):
            assert 403 in errors, (method, path)
        if "requestBody" in op:
            assert {400, 404, 413, 415, 422} <= set(errors), (method, path)
        if "{" in path:
            assert 404 in errors, (method, path)
        if path not in ("/v1/health", "/v2/health/live", "/v2/health/ready"):
            assert {401, 429, 504} <= set(errors), (method, path)
    # Every error status a route may answer is documented (a few the schema names, checked against the app).
    analyze = schema["paths"]["/v1/analyze"]["post"]["responses"]
    assert {"400", "401", "403", "404", "413", "415", "422", "429", "504"} <= set(analyze)  # 404: an unknown model
    assert analyze["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert json.dumps(schema).count("HTTPValidationError") == 0


def test_model_routes_have_typed_answers(app_client) -> None:
    paths = app_client().get("/openapi.json").json()["paths"]
    ok = lambda p, m: paths[p][m]["responses"]["200"]["content"]["application/json"]["schema"]  # noqa: E731
    assert ok("/v1/health", "get") == {"$ref": "#/components/schemas/Health"}
    assert ok("/v1/models", "get") == {"$ref": "#/components/schemas/ModelList"}
    assert ok("/v1/models/{name}", "get") == {"$ref": "#/components/schemas/ModelRecord"}


# --------------------------------------------------------------------------- DNS rebinding
def test_a_request_for_another_host_name_is_421_when_hosts_are_listed(app_client) -> None:
    c = app_client(allowed_hosts=["localhost", "127.0.0.1", "[::1]"])
    r = c.get("/v1/models")  # TestClient sends Host: testserver, as a rebinding page sends its own name
    assert r.status_code == 421, r.text
    err = r.json()["error"]
    assert err["code"] == "misdirected_request" and "--allowed-host" in err["message"]
    assert r.headers["x-content-type-options"] == "nosniff"
    r = c.post("/v1/analyze", headers={"Host": "evil.example"}, files={"image": ("a.png", _png())})
    assert r.status_code == 421
    for host in ("localhost:8000", "127.0.0.1:8000", "LOCALHOST", "[::1]:8000"):
        assert c.get("/v1/models", headers={"Host": host}).status_code == 200, host
    assert app_client().get("/v1/models").status_code == 200  # no list: every name (create_app's default)


def test_allowed_hosts_are_checked_when_the_server_starts() -> None:
    from pixlearn.serve.settings import ServeSettings

    assert ServeSettings(allowed_hosts=["PixLearn.Example.com", "[::1]"]).allowed_hosts == ["pixlearn.example.com",
                                                                                          "::1"]
    for bad in ("http://x.example", "x.example:80", "a/b", ""):
        with pytest.raises(ValueError, match="--allowed-host"):
            ServeSettings(allowed_hosts=[bad])


def test_pixlearn_serve_on_loopback_answers_only_to_loopback_names(start_server) -> None:
    import httpx

    url = start_server()
    port = url.rsplit(":", 1)[1]
    assert httpx.get(url + "/v1/models").status_code == 200
    assert httpx.get(url + "/v1/models", headers={"Host": f"localhost:{port}"}).status_code == 200
    r = httpx.get(url + "/v1/models", headers={"Host": f"rebind.example:{port}"})
    assert r.status_code == 421 and "--allowed-host" in r.json()["error"]["message"]
    url = start_server("--allowed-host", "rebind.example")
    port = url.rsplit(":", 1)[1]
    assert httpx.get(url + "/v1/models", headers={"Host": f"rebind.example:{port}"}).status_code == 200
    assert httpx.get(url + "/v1/models").status_code == 200  # loopback names stay allowed
    assert httpx.get(url + "/v1/models", headers={"Host": f"other.example:{port}"}).status_code == 421
