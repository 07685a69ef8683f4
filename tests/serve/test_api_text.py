"""/v1/text and features=text in /v1/analyze: text rendered with a DejaVu font read back exactly, in reading order,
with quadrilaterals; min_confidence, rotation and max_side bounds; a bad image."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.serve.conftest import png_bytes

pytest.importorskip("rapidocr_onnxruntime", reason="reading text needs rapidocr-onnxruntime")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
pytestmark = pytest.mark.skipif(not FONT.is_file(), reason=f"needs the DejaVu fonts ({FONT}): apt-get install "
                                                            "fonts-dejavu-core")


def _sign() -> np.ndarray:
    """Two lines, two words on the first: 'OPEN 24' above 'PIXLEARN', black on white."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (320, 160), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), 30)
    draw.text((20, 20), "OPEN", fill="black", font=font)
    draw.text((200, 20), "24", fill="black", font=font)
    draw.text((20, 95), "PIXLEARN", fill="black", font=font)
    return np.asarray(img)


SIGN = _sign()


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """One service for the module (the worker process loads the OCR models once); ``workers=1``."""
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    s = ServeSettings(storage=tmp_path_factory.mktemp("text") / "s", db=None, api_keys=[], models=[],
                      allowed_roots=[], workers=1)
    with TestClient(create_app(s)) as c:
        yield c


def test_text_in_reading_order(client) -> None:
    r = client.post("/v1/text", files={"file": ("sign.png", png_bytes(SIGN), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(x["text"], x["line"]) for x in body["lines"]] == [("OPEN", 0), ("24", 0), ("PIXLEARN", 1)]
    assert body["text"] == "OPEN 24\nPIXLEARN"
    assert body["image"] == {"width": 320, "height": 160} and body["rotation"] == 0
    first = body["lines"][0]
    assert len(first["quad"]) == 4 and 0.5 <= first["confidence"] <= 1
    x0, y0, x1, y1 = first["box"]
    assert 10 <= x0 < x1 <= 120 and 10 <= y0 < y1 <= 70
    # JSON base64 and an impossible confidence floor: nothing is kept
    b64 = base64.b64encode(png_bytes(SIGN)).decode()
    r = client.post("/v1/text", json={"image": {"b64": b64}, "min_confidence": 1.0})
    assert r.status_code == 200 and all(x["confidence"] >= 1.0 for x in r.json()["lines"])


def test_upside_down_with_rotation_any(client) -> None:
    turned = np.ascontiguousarray(SIGN[::-1, ::-1])
    r = client.post("/v1/text?rotation=any", files={"file": ("t.png", png_bytes(turned), "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["text"] == "OPEN 24\nPIXLEARN" and r.json()["rotation"] == 180
    x0, y0, x1, y1 = r.json()["lines"][0]["box"]  # in the turned image's pixels: OPEN is at the bottom right
    assert x0 > 160 and y0 > 80


def test_errors(client) -> None:
    f = {"file": ("sign.png", png_bytes(SIGN), "image/png")}
    cases = [
        (client.post("/v1/text?min_confidence=1.5", files=f), 400, "min_confidence"),
        (client.post("/v1/text?min_confidence=abc", files=f), 400, "min_confidence"),
        (client.post("/v1/text?rotation=sideways", files=f), 400, "rotation"),
        (client.post("/v1/text?max_side=10", files=f), 400, "max_side"),
        (client.post("/v1/text", files={"file": ("x.png", b"not an image", "image/png")}), 400, "x.png"),
        (client.post("/v1/text", json={"nothing": 1}), 400, "no image"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (r.request.url, r.text)
        assert words in r.json()["error"]["message"], (r.request.url, r.text)


def test_analyze_text_feature(client) -> None:
    r = client.post("/v1/analyze?features=text", files={"file": ("sign.png", png_bytes(SIGN), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["text"] for x in body["text"]] == ["OPEN", "24", "PIXLEARN"]
    assert "text" in body["timings_ms"] and "colors" not in body
    r = client.post("/v1/analyze?features=text&min_confidence=2", files={"file": ("s.png", png_bytes(SIGN), "image/png")})
    assert r.status_code == 400 and "min_confidence" in r.json()["error"]["message"]


def test_the_bounds_are_the_ocr_tools() -> None:
    from pixlearn.serve.routes_text import ROTATIONS, check_text_params
    from pixlearn.tasks.registry import tool

    assert tuple(tool("ocr").load("rotations")) == ROTATIONS
    low, high = tool("ocr").load("max_side_range")
    assert check_text_params({"max_side": low})["max_side"] == low and check_text_params({"max_side": high})["max_side"] == high
