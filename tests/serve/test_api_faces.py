"""/v1/faces: detect, enroll, identify (names, unknown, a group photo), verify, the gallery in the service's database
(a deleted person leaves no row behind), bounds and bad inputs, API keys. The face is skimage's astronaut."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.serve.conftest import png_bytes

pytest.importorskip("dlib", reason="the faces routes need dlib (pip install dlib-bin)")


def _face() -> np.ndarray:
    """The astronaut's head and shoulders (280 x 260): the full picture's mission patch fools the HOG detector."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:280, 90:350])


FACE = _face()
FLIPPED = FACE[:, ::-1].copy()
GROUP = np.concatenate([FACE, FLIPPED], axis=1)  # two faces side by side
BLANK = np.full((64, 64, 3), 200, np.uint8)


def _png(image: np.ndarray, name: str = "img.png") -> tuple:
    return (name, png_bytes(image), "image/png")


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """One service for the module (the worker processes load dlib's models once); ``workers=1``."""
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    s = ServeSettings(storage=tmp_path_factory.mktemp("faces") / "s", db=None, api_keys=[], models=[],
                      allowed_roots=[], workers=1)
    with TestClient(create_app(s)) as c:
        yield c


def test_detect(client) -> None:
    r = client.post("/v1/faces/detect", files={"file": _png(GROUP)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["detector"] == "hog" and body["image"] == {"width": 520, "height": 280}
    faces = sorted(body["faces"], key=lambda f: f["box"][0])
    assert len(faces) == 2
    assert faces[0]["box"][2] <= 260 <= faces[1]["box"][0]  # one face in each half
    assert all(len(f["landmarks"]) == 5 and "vector" not in f for f in faces)
    r = client.post("/v1/faces/detect?upsample=0", files={"file": _png(BLANK)})
    assert r.status_code == 200 and r.json()["faces"] == []
    # a large photo without upsample is scanned as it is (doubled it would pass the HOG detector's pixel limit)
    big = np.zeros((3200, 3200, 3), np.uint8)  # 10.2 megapixels: 41 doubled, over the 40 of HOG
    big[:280, :260] = FACE
    r = client.post("/v1/faces/detect", files={"file": _png(big)})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1, r.text
    r = client.post("/v1/faces/detect?upsample=1", files={"file": _png(big)})
    assert r.status_code == 400 and "upsample=0" in r.json()["error"]["message"]


def test_enroll_identify_verify_delete(client) -> None:
    from sqlalchemy import select

    from pixlearn.serve.routes_faces import DatabaseGalleryStore, face_people_table, face_vectors_table

    engine = client.app.state.engine
    # identify before anyone is enrolled: the face is there, unnamed
    r = client.post("/v1/faces/identify", files={"file": _png(FACE)})
    assert r.status_code == 200, r.text
    assert [f["name"] for f in r.json()["faces"]] == ["unknown"] and "empty" in r.json()["note"]

    r = client.post("/v1/faces/enroll", data={"name": "Eileen"},
                    files=[("files", _png(FACE, "eileen.png")), ("files", _png(BLANK, "wall.png")),
                           ("files", _png(GROUP, "group.png")), ("files", ("bad.png", b"nope", "image/png"))])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["added"], body["count"], body["refused"]) == ("Eileen", 1, 1, 3)
    status = {row["filename"]: (row["status"], row["reason"] or "") for row in body["images"]}
    assert status["eileen.png"][0] == "enrolled"
    assert "no face" in status["wall.png"][1]
    assert "2 faces" in status["group.png"][1]
    assert status["bad.png"][0] == "refused" and "bad.png" in status["bad.png"][1]
    # a second person (hand-made embedding: far from every real face)
    DatabaseGalleryStore(engine).add("Other", np.eye(128, dtype=np.float32)[:1], [{"source": "hand-made"}])

    r = client.post("/v1/faces/identify", files={"file": _png(GROUP)}, data={"top_k": "2"})
    assert r.status_code == 200, r.text
    faces = r.json()["faces"]
    assert [f["name"] for f in faces] == ["Eileen", "Eileen"]
    assert all(f["distance"] < 0.6 and len(f["candidates"]) == 2 and "vector" not in f for f in faces)
    assert r.json()["threshold"] == 0.6
    r = client.post("/v1/faces/identify?threshold=0.0001", files={"file": _png(FLIPPED)})
    assert [f["name"] for f in r.json()["faces"]] == ["unknown"]

    r = client.get("/v1/faces/gallery")
    assert r.status_code == 200
    assert [(p["name"], p["count"]) for p in r.json()["people"]] == [("Eileen", 1), ("Other", 1)]
    assert r.json()["threshold"] == 0.6

    r = client.post("/v1/faces/verify", files={"image_a": _png(FACE), "image_b": _png(FLIPPED)})
    assert r.status_code == 200, r.text
    assert r.json()["same"] is True and r.json()["threshold"] == 0.6
    r = client.post("/v1/faces/verify", files={"image_a": _png(FACE), "image_b": _png(FLIPPED)},
                    data={"threshold": "0.0001"})
    assert r.json()["same"] is False

    r = client.delete("/v1/faces/gallery/Eileen")
    assert r.status_code == 200 and r.json() == {"deleted": "Eileen", "removed": 1}
    with engine.connect() as conn:  # nothing of her remains in the database
        assert conn.execute(select(face_vectors_table).where(face_vectors_table.c.name == "Eileen")).first() is None
        assert conn.execute(select(face_people_table).where(face_people_table.c.name == "Eileen")).first() is None
    assert [p["name"] for p in client.get("/v1/faces/gallery").json()["people"]] == ["Other"]
    r = client.post("/v1/faces/identify", files={"file": _png(FACE)})
    assert [f["name"] for f in r.json()["faces"]] == ["unknown"]
    assert client.delete("/v1/faces/gallery/Eileen").status_code == 404
    assert client.delete("/v1/faces/gallery/Other").json()["removed"] == 1


def test_errors(client) -> None:
    cases = [
        (client.post("/v1/faces/detect", files={"file": ("x.png", b"garbage", "image/png")}), 400, "x.png"),
        (client.post("/v1/faces/detect?detector=haar", files={"file": _png(FACE)}), 400, "hog"),
        (client.post("/v1/faces/detect?upsample=4", files={"file": _png(FACE)}), 400, "upsample"),
        (client.post("/v1/faces/detect?upsample=x", files={"file": _png(FACE)}), 400, "upsample"),
        (client.post("/v1/faces/detect"), 415, "Content-Type"),
        (client.post("/v1/faces/identify?threshold=0", files={"file": _png(FACE)}), 400, "threshold"),
        (client.post("/v1/faces/identify?threshold=4.5", files={"file": _png(FACE)}), 400, "threshold"),
        (client.post("/v1/faces/identify?top_k=11", files={"file": _png(FACE)}), 400, "top_k"),
        (client.post("/v1/faces/enroll", data={"name": "../x"}, files=[("files", _png(FACE))]), 400, "person name"),
        (client.post("/v1/faces/enroll", data={"name": "unknown"}, files=[("files", _png(FACE))]), 400, "unknown"),
        (client.post("/v1/faces/enroll", data={"name": "a" * 65}, files=[("files", _png(FACE))]), 400, "64"),
        (client.post("/v1/faces/enroll", files=[("files", _png(FACE))]), 422, "name"),
        (client.post("/v1/faces/enroll", data={"name": "a/b"}, files=[("files", ("x.png", b"no", "image/png"))]), 400,
         "person name"),
        (client.post("/v1/faces/verify", files={"image_a": _png(FACE), "image_b": _png(BLANK, "wall.png")}), 400,
         "no face"),
        (client.post("/v1/faces/verify", files={"image_a": _png(FACE)}), 422, "image_b"),
        (client.delete("/v1/faces/gallery/nobody"), 404, "no person"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (r.request.url, r.text)
        assert words in r.json()["error"]["message"], (r.request.url, r.text)


def test_analyze_faces_feature(client) -> None:
    client.post("/v1/faces/enroll", data={"name": "Eileen"}, files=[("files", _png(FACE))])
    try:
        r = client.post("/v1/analyze?features=faces,colors", files={"file": _png(GROUP)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= {"faces", "colors"} and "text" not in body
        assert [f["name"] for f in body["faces"]] == ["Eileen", "Eileen"]
        assert all(len(f["box"]) == 4 and len(f["landmarks"]) == 5 for f in body["faces"])
        assert "faces" in body["timings_ms"]
        # not a default feature
        assert "faces" not in client.post("/v1/analyze", files={"file": _png(FACE)}).json()
    finally:
        client.delete("/v1/faces/gallery/Eileen")


def test_api_keys_guard_faces(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    s = ServeSettings(storage=tmp_path / "s", db=None, api_keys=["k1"], models=[], allowed_roots=[], workers=0)
    with TestClient(create_app(s)) as c:
        for method, url in [("post", "/v1/faces/detect"), ("post", "/v1/faces/enroll"), ("post", "/v1/faces/identify"),
                            ("post", "/v1/faces/verify"), ("get", "/v1/faces/gallery"),
                            ("delete", "/v1/faces/gallery/x"), ("post", "/v1/text")]:
            r = getattr(c, method)(url)
            assert r.status_code == 401, url
        assert c.get("/v1/faces/gallery", headers={"X-API-Key": "k1"}).status_code == 200
