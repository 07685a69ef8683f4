"""Malformed and hostile images are a 4xx with the reason on every route that reads images, never a 5xx."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from tests.serve.conftest import png_bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, with no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


def png_bomb(side: int = 10_000) -> bytes:
    """A real grey PNG of side x side black pixels (100 MP for 10,000), about 100 kB compressed."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _jpeg() -> bytes:
    from pixlearn.io import encode_image

    return encode_image(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8), "jpeg")


HOSTILE = {
    "zero bytes": (b"", 400, "empty input"),
    "truncated jpeg": (_jpeg()[:300], 400, "truncated"),
    "text renamed .jpg": (b"hello, this is not an image\n" * 4, 400, "not an image (text"),
    "random bytes": (bytes(range(7, 250)) * 3, 400, "not an image"),
    "pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF", 415, "PDF is not an allowed image format"),
    "png header 30000x30000": (png_header_only(30_000, 30_000), 413, "900,000,000 pixels exceeds the limit"),
    "png bomb 100 MP": (png_bomb(), 413, "100,000,000 pixels exceeds the limit"),
    "truncated png": (png_bytes(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))[:80], 400,
                      "corrupt or truncated PNG data"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_analyze_refuses_with_the_reason(client, case) -> None:
    data, status, reason = HOSTILE[case]
    r = client.post("/v1/analyze", files={"file": ("x.jpg", data, "image/jpeg")})
    assert r.status_code == status, (case, r.text)
    msg = r.json()["error"]["message"]
    assert reason in msg and msg.startswith("x.jpg"), msg


@pytest.mark.parametrize("case", ["zero bytes", "pdf", "png bomb 100 MP"])
def test_ops_and_process_refuse_too(client, case) -> None:
    data, status, reason = HOSTILE[case]
    r = client.post("/v1/ops/canny", files={"file": ("x.jpg", data)})
    assert r.status_code == status and reason in r.json()["error"]["message"]
    r = client.post("/v1/process", files={"file": ("x.jpg", data)}, data={"recipe": "edges"})
    assert r.status_code == status and reason in r.json()["error"]["message"]


def test_the_pixel_limit_follows_the_settings(settings) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    img = png_bytes(np.zeros((40, 40, 3), np.uint8))
    with TestClient(create_app(settings.model_copy(update={"max_pixels": 1000}))) as c:
        r = c.post("/v1/analyze", files={"file": ("big.png", img)})
        assert r.status_code == 413 and "1,600 pixels exceeds the limit of 1,000" in r.json()["error"]["message"]


def test_bad_base64_is_400(client) -> None:
    r = client.post("/v1/analyze", json={"image": {"b64": "not base64 at all!!"}})
    assert r.status_code == 400 and "not valid base64" in r.json()["error"]["message"]
    r = client.post("/v1/analyze", json={"image": {"b64": ""}})
    assert r.status_code == 400 and "empty input" in r.json()["error"]["message"]
