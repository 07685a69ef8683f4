"""Open Inference Protocol v2: in-process JSON round trips and the official Triton HTTP api against uvicorn."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np
import pytest

from pixlearn.io import encode_image, read_image

MODEL = "colours"  # the name of the conftest's trained_run folder


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("oip_storage")


@pytest.fixture(scope="module")
def api(trained_run, storage):
    """The whole service app in-process, started (lifespan) with the run registered as --model."""
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    app = create_app(ServeSettings(storage=storage / "inproc", db=None, models=[trained_run], api_keys=[]))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def clf(trained_run):
    from pixlearn.tasks.classify.predict import load_classifier

    return load_classifier(trained_run)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [np.clip(rng.normal(rgb, 25, (24, 20, 3)), 0, 255).astype(np.uint8) for rgb in ((230, 30, 30), (30, 40, 230))]


def _expected(clf, images: list[np.ndarray]) -> np.ndarray:
    return clf.predict_proba(clf.to_tensor(images)).numpy()


def _infer(api, body: Any, model: str = MODEL, **kw):
    return api.post(f"/v2/models/{model}/infer", content=json.dumps(body), headers={"Content-Type": "application/json"}, **kw)


# ---------------------------------------------------------------- in-process (TestClient)
def test_server_metadata_health_and_model_metadata(api, clf) -> None:
    import pixlearn

    meta = api.get("/v2").json()
    assert meta["name"] == "pixlearn" and meta["version"] == pixlearn.__version__
    assert set(meta["extensions"]) == {"binary_tensor_data", "classification"}
    assert api.get("/v2/health/live").status_code == 200
    assert api.get("/v2/health/ready").status_code == 200
    model = api.get(f"/v2/models/{MODEL}").json()
    assert model["name"] == MODEL and model["versions"] == ["1"] and model["platform"] == "pixlearn"
    assert model["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 16, 16]},
                               {"name": "image", "datatype": "BYTES", "shape": [-1]}]
    assert model["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}
    assert model["parameters"]["classes"] == clf.classes
    assert model["parameters"]["preprocess"]["mean"] == list(clf.preprocess.mean)
    assert api.get(f"/v2/models/{MODEL}/versions/1").json() == model
    assert api.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}


def test_ready_is_503_until_started_and_keys_guard_all_but_health(storage) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    app = create_app(ServeSettings(storage=storage / "keys", db=None, api_keys=["k1"]))
    c = TestClient(app)  # not entered: the lifespan (start-up) has not run
    assert c.get("/v2/health/live").status_code == 200
    r = c.get("/v2/health/ready")
    assert r.status_code == 503 and "starting" in r.json()["error"]
    with TestClient(app) as c:
        assert c.get("/v2/health/ready").status_code == 200
        assert c.get("/v2").status_code == 401
        assert c.get("/v2", headers={"X-API-Key": "k1"}).json()["name"] == "pixlearn"


def test_fp32_json_round_trip_matches_predict_proba(api, clf, images) -> None:
    x = clf.to_tensor(images).numpy()
    body = {"id": "req-7", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}],
            "outputs": [{"name": "probabilities"}]}
    r = _infer(api, body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "req-7" and out["model_name"] == MODEL
    assert [o["name"] for o in out["outputs"]] == ["probabilities"]  # only what was asked for
    probs = out["outputs"][0]
    assert probs["datatype"] == "FP32" and probs["shape"] == [2, 3]
    np.testing.assert_allclose(np.array(probs["data"]).reshape(2, 3), _expected(clf, images), rtol=1e-5, atol=1e-6)
    # nested (unflattened) data is the same tensor
    body["inputs"][0]["data"] = x.tolist()
    nested = _infer(api, body).json()["outputs"][0]["data"]
    np.testing.assert_allclose(nested, probs["data"], rtol=1e-6)


def test_image_bytes_json_base64_and_labels(api, clf, images) -> None:
    pngs = [encode_image(img, "png") for img in images]
    body = {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                        "data": [base64.b64encode(pngs[0]).decode(), "data:image/png;base64," + base64.b64encode(pngs[1]).decode()]}]}
    r = _infer(api, body)
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert "id" not in r.json()
    expected = _expected(clf, [read_image(p) for p in pngs])
    np.testing.assert_allclose(np.array(outs["probabilities"]["data"]).reshape(2, 3), expected, rtol=1e-5, atol=1e-6)
    assert outs["labels"] == {"name": "labels", "datatype": "BYTES", "shape": [2],
                              "data": [clf.classes[i] for i in expected.argmax(1)]}


def test_classification_extension(api, clf, images) -> None:
    png = base64.b64encode(encode_image(images[0], "png")).decode()
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [png]}],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]}
    out = _infer(api, body).json()["outputs"][0]
    p = _expected(clf, [images[0]])[0]
    order = np.argsort(-p)[:2]
    assert out["datatype"] == "BYTES" and out["shape"] == [1, 2]
    assert [s.split(":", 1)[1] for s in out["data"]] == [f"{j}:{clf.classes[j]}" for j in order]
    assert float(out["data"][0].split(":")[0]) == pytest.approx(p[order[0]], abs=1e-6)


def test_binary_request_and_response_in_process(api, clf, images) -> None:
    """The binary tensor data extension, byte by byte: FP32 input in, FP32 + BYTES outputs back."""
    x = clf.to_tensor(images).numpy().astype("<f4")
    head = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    r = api.post(f"/v2/models/{MODEL}/infer", content=head + x.tobytes(),
                    headers={"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    meta, blob = json.loads(r.content[:n]), r.content[n:]
    sizes = [o["parameters"]["binary_data_size"] for o in meta["outputs"]]
    assert sum(sizes) == len(blob) and sizes[0] == 2 * 3 * 4
    np.testing.assert_allclose(np.frombuffer(blob[: sizes[0]], "<f4").reshape(2, 3), _expected(clf, images), rtol=1e-5, atol=1e-6)
    labels, rest = [], blob[sizes[0]:]
    while rest:
        (k,) = struct.unpack_from("<I", rest)
        labels.append(rest[4 : 4 + k].decode())
        rest = rest[4 + k :]
    assert labels == [clf.classes[i] for i in _expected(clf, images).argmax(1)]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"inputs": [{"name": "input", "shape": [1, 3, 8, 8], "datatype": "FP32", "data": [0.0] * 192}]}, 400, "[N, 3, 16, 16]"),
        ({"inputs": [{"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP64", "data": [0.0] * 768}]}, 400, "FP32"),
        ({"inputs": [{"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP32", "data": [0.0] * 700}]}, 400, "needs 768 values"),
        ({"inputs": [{"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP32", "data": ["a"] * 768}]}, 400, "numbers"),
        ({"inputs": [{"name": "input", "shape": [1, 3, 16, 16], "datatype": "FP32", "data": [float("nan")] * 768}]}, 400, "NaN"),
        ({"inputs": [{"name": "imag", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}, 400, "did you mean 'image'"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["bm90IGFuIGltYWdl"]}]}, 400, "element 0"),
        ({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": ["eA=="]}]}, 400, "needs 2 elements"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["x"]}], "outputs": [{"name": "probs"}]}, 400,
         "did you mean 'probabilities'"),
        ({"inputs": []}, 400, "'inputs'"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_requests_are_4xx_with_a_reason(api, body, status, needle) -> None:
    r = _infer(api, body)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_unknown_model_or_version_is_404(api) -> None:
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    for r in (_infer(api, body, model="colors"), api.get("/v2/models/colors"), api.get("/v2/models/colors/ready")):
        assert r.status_code == 404
        assert "did you mean 'colours'" in r.json()["error"]
    r = api.post(f"/v2/models/{MODEL}/versions/2/infer", json=body)
    assert r.status_code == 404 and "only version is '1'" in r.json()["error"]
    r = api.post(f"/v2/models/{MODEL}/infer", content=b"{not json")
    assert r.status_code == 400 and "not a valid JSON" in r.json()["error"]


# ---------------------------------------------------------------- tritonclient.http against pixlearn serve
@pytest.fixture(scope="module")
def triton(trained_run, storage):
    """The official Triton HTTP api, unmodified, against a real `pixlearn serve --model RUN` process on loopback."""
    import tritonclient.http as httpclient

    from .conftest import ServerProcess

    server = ServerProcess(storage / "live", ("--model", str(trained_run)))
    try:
        server.wait_ready()
        c = httpclient.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        yield c
        c.close()
    finally:
        server.stop()


def test_tritonclient_health_and_metadata(triton) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.get_server_metadata()["name"] == "pixlearn"
    meta = triton.get_model_metadata(MODEL)
    assert meta["inputs"][0]["shape"] == [-1, 3, 16, 16]
    assert triton.is_model_ready(MODEL) and triton.is_model_ready(MODEL, model_version="1")
    assert not triton.is_model_ready("nope")


@pytest.mark.parametrize("binary_data", [True, False])
def test_tritonclient_fp32_infer(triton, clf, images, binary_data) -> None:
    import tritonclient.http as httpclient

    x = clf.to_tensor(images).numpy()
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary_data)
    res = triton.infer(MODEL, [inp], request_id="abc")  # no outputs named: every output, as binary data
    assert res.get_response()["id"] == "abc"
    np.testing.assert_allclose(res.as_numpy("probabilities"), _expected(clf, images), rtol=1e-5, atol=1e-6)
    json_out = [httpclient.InferRequestedOutput("probabilities", binary_data=False)]
    res = triton.infer(MODEL, [inp], outputs=json_out, model_version="1", request_compression_algorithm="gzip")
    assert res.get_output("labels") is None
    np.testing.assert_allclose(res.as_numpy("probabilities"), _expected(clf, images), rtol=1e-5, atol=1e-6)


def test_tritonclient_image_bytes_infer(triton, clf, images) -> None:
    import tritonclient.http as httpclient

    encoded = [encode_image(images[0], "png"), encode_image(images[1], "jpeg", quality=90)]
    inp = httpclient.InferInput("image", [2], "BYTES")
    inp.set_data_from_numpy(np.array(encoded, dtype=np.object_))  # binary_data=True: raw bytes after the JSON
    outputs = [httpclient.InferRequestedOutput("probabilities"), httpclient.InferRequestedOutput("labels")]
    res = triton.infer(MODEL, [inp], outputs=outputs)
    expected = _expected(clf, [read_image(b) for b in encoded])
    np.testing.assert_allclose(res.as_numpy("probabilities"), expected, rtol=1e-5, atol=1e-6)
    assert [s.decode() for s in res.as_numpy("labels")] == [clf.classes[i] for i in expected.argmax(1)]
    # JSON BYTES: tritonclient sends the strings as they are, so base64 text goes through
    inp = httpclient.InferInput("image", [1], "BYTES")
    inp.set_data_from_numpy(np.array([base64.b64encode(encoded[0])], dtype=np.object_), binary_data=False)
    res = triton.infer(MODEL, [inp], outputs=[httpclient.InferRequestedOutput("probabilities", class_count=1)])
    assert res.as_numpy("probabilities")[0, 0].decode().endswith(f":{clf.classes[int(expected[0].argmax())]}")


def test_tritonclient_sees_errors(triton) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    inp = httpclient.InferInput("input", [1, 3, 8, 8], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(InferenceServerException) as info:
        triton.infer(MODEL, [inp])
    assert info.value.status() == "400" and "[N, 3, 16, 16]" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        triton.get_model_metadata("missing")
    assert info.value.status() == "404"
