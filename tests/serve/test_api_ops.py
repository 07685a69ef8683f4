"""/v1/ops and /v1/process: the op registry over HTTP, image and data results, recipes, did-you-mean errors."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from tests.serve.conftest import png_bytes


@pytest.fixture
def photo_png(photo) -> bytes:
    return png_bytes(photo[:48, :64])


def _decode(data: bytes) -> np.ndarray:
    from pixlearn.io import read_image

    return read_image(data, mode="unchanged")


def test_ops_list_names_groups_and_options(client) -> None:
    from pixlearn.ops import list_ops

    r = client.get("/v1/ops")
    assert r.status_code == 200
    ops = {o["name"]: o for o in r.json()["ops"]}
    assert set(ops) == {s.name for s in list_ops()}
    assert ops["canny"]["group"] == "edges" and ops["canny"]["returns"] == "mask"
    assert ops["gaussian"]["options"]["sigma"] == {"type": "float", "default": 1.0, "range": "(0, 100]",
                                                   "min": 0, "max": 100}
    assert ops["gaussian"]["doc"] == "Gaussian blur with standard deviation sigma pixels (cv2.GaussianBlur)."
    assert not any("``" in o["doc"] or ":func:" in o["doc"] for o in ops.values())  # plain text, no RST
    assert ops["clahe"]["options"]["tile"]["default"] == [8, 8]
    assert ops["dominant_colors"]["returns"] == "data" and ops["canny"]["doc"]


def test_image_op_returns_the_ops_png(client, photo, photo_png) -> None:
    from pixlearn.ops import get_op

    r = client.post("/v1/ops/gaussian?sigma=2", files={"file": ("p.png", photo_png, "image/png")})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(_decode(r.content), get_op("gaussian")(photo[:48, :64], sigma=2.0))
    r = client.post("/v1/ops/resize?size=10,12", files={"image": ("p.png", photo_png)})  # 'image' field accepted
    assert r.status_code == 200 and _decode(r.content).shape == (10, 12, 3)


def test_mask_op_as_json(client, photo, photo_png) -> None:
    from pixlearn.ops import get_op

    r = client.post("/v1/ops/canny?format=json", files={"file": ("p.png", photo_png)})
    assert r.status_code == 200
    body = r.json()
    assert (body["width"], body["height"]) == (64, 48)
    np.testing.assert_array_equal(_decode(base64.b64decode(body["png_b64"])), get_op("canny")(photo[:48, :64]))


def test_data_op_returns_json(client, photo, photo_png) -> None:
    from pixlearn.ops.color import dominant_colors

    r = client.post("/v1/ops/dominant_colors?k=3", files={"file": ("p.png", photo_png)})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == dominant_colors(photo[:48, :64], k=3)


def test_unknown_op_is_404_with_the_closest(client, photo_png) -> None:
    r = client.post("/v1/ops/cany", files={"file": ("p.png", photo_png)})
    assert r.status_code == 404 and "did you mean 'canny'" in r.json()["error"]["message"]


@pytest.mark.parametrize("query, status, fragment", [
    ("sigmaa=2", 400, "did you mean 'sigma'"),
    ("sigma=abc", 400, "'abc' is invalid"),
    ("sigma=1&format=tiff", 400, "format='tiff' is not valid"),
])
def test_bad_options_are_400_before_reading_the_image(client, query, status, fragment) -> None:
    r = client.post(f"/v1/ops/gaussian?{query}", files={"file": ("p.png", b"not even an image")})
    assert r.status_code == status and fragment in r.json()["error"]["message"]


def test_missing_file_and_oversized_outputs(client, photo_png) -> None:
    r = client.post("/v1/ops/canny")
    assert r.status_code == 400 and "'file'" in r.json()["error"]["message"]
    r = client.post("/v1/ops/resize?size=16000,16000", files={"file": ("p.png", photo_png)})
    assert r.status_code == 413 and "16000x16000" in r.json()["error"]["message"]
    r = client.post("/v1/ops/pad?top=9000&left=9000", files={"file": ("p.png", photo_png)})
    assert r.status_code == 413


def test_process_builtin_recipe_and_yaml(client, photo, photo_png) -> None:
    from pixlearn.ops.recipe import Recipe

    r = client.post("/v1/process", files={"file": ("p.png", photo_png)}, data={"recipe": "edges"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(_decode(r.content), Recipe.load("edges")(photo[:48, :64]))
    yaml_text = "steps:\n  - gaussian: {sigma: 2}\n  - quality\n"
    r = client.post("/v1/process", files={"file": ("p.png", photo_png)}, data={"recipe": yaml_text})
    assert r.status_code == 200 and r.json() == pytest.approx(Recipe.from_yaml(yaml_text)(photo[:48, :64]))
    r = client.post("/v1/process?format=json", files={"file": ("p.png", photo_png)},
                    data={"recipe": "steps: [grayscale]\noutput: {format: jpg}"})
    assert r.status_code == 200 and set(r.json()) >= {"width", "height", "png_b64"}
    r = client.post("/v1/process", files={"file": ("p.png", photo_png)},
                    data={"recipe": "steps: [grayscale]\noutput: {format: jpg, quality: 80}"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("recipe, fragment", [
    ("edgs", "did you mean 'edges'"),
    ("steps: [gausian]", "did you mean 'gaussian'"),
    ("steps: [{gaussian: {sigmaa: 1}}]", "did you mean 'sigma'"),
    ("steps: [quality, canny]", "can only be the last step"),
    ("steps: [", "not valid YAML"),
    ("/etc/passwd", "built-in recipe"),
])
def test_bad_recipes_are_400(client, photo_png, recipe, fragment) -> None:
    r = client.post("/v1/process", files={"file": ("p.png", photo_png)}, data={"recipe": recipe})
    assert r.status_code == 400, r.text
    assert fragment in r.json()["error"]["message"]
