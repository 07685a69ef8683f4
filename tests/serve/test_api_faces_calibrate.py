"""/v1/faces/calibrate (from a zip with one folder per person, and from the enrolled faces), the calibration in
GET /v1/faces/gallery and in identify/verify afterwards, the zip's safety checks, and JSON bodies with base64 images
for /v1/faces/enroll and /v1/faces/verify. The face is skimage's astronaut."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator

import numpy as np
import pytest

from tests.serve.conftest import png_bytes

pytest.importorskip("dlib", reason="the faces routes need dlib (pip install dlib-bin)")


def _face() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:280, 90:350])


FACE = _face()
FLIPPED = FACE[:, ::-1].copy()
DARK = (FACE.astype(np.float32) * 0.6).astype(np.uint8)
BLANK = np.full((64, 64, 3), 200, np.uint8)


def _b64(image: np.ndarray) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _app(tmp, **kwargs):
    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    kwargs = {"api_keys": [], "workers": 1, **kwargs}
    return create_app(ServeSettings(storage=tmp / "s", db=None, models=[], allowed_roots=[], **kwargs))


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """One service for the module (the worker process loads dlib's models once)."""
    from fastapi.testclient import TestClient

    with TestClient(_app(tmp_path_factory.mktemp("faces-cal"))) as c:
        yield c


@pytest.fixture()
def empty_gallery(client) -> Iterator:
    """The gallery emptied and uncalibrated before and after the test."""
    from pixlearn.serve.routes_faces import DatabaseGalleryStore

    store = DatabaseGalleryStore(client.app.state.engine)

    def clear() -> None:
        for p in store.people():
            store.delete(p["name"])
        store.set_calibration(None)

    clear()
    yield store
    clear()


def test_calibrate_from_the_gallery_changes_the_threshold(client, empty_gallery) -> None:
    store = empty_gallery
    r = client.get("/v1/faces/gallery")
    assert r.status_code == 200
    body = r.json()
    assert (body["threshold"], body["calibrated"], body["calibration"]) == (0.6, False, None)
    assert "default 0.6" in body["note"]

    # one person with one face: both things missing are said
    store.add("ada", np.eye(128, dtype=np.float32)[:1], [{}])
    r = client.post("/v1/faces/calibrate")
    assert r.status_code == 400, r.text
    msg = r.json()["error"]["message"]
    assert "1 face(s) of 1 person(s)" in msg and "at least 2 people" in msg and "2 faces or more" in msg
    # two people, one face each: still no same-person pair
    store.add("bob", np.eye(128, dtype=np.float32)[2:3], [{}])
    r = client.post("/v1/faces/calibrate")
    assert r.status_code == 400 and "no person with 2 faces" in r.json()["error"]["message"]
    assert "at least 2 people" not in r.json()["error"]["message"]

    # ada's second face 0.1 from her first, bob 1.41 from both: the threshold lands between
    second = np.eye(128, dtype=np.float32)[:1].copy()
    second[0, 1] = 0.1
    store.add("ada", second, [{}])
    r = client.post("/v1/faces/calibrate")
    assert r.status_code == 200, r.text
    body = r.json()
    cal = body["calibration"]
    assert 0.1 < body["threshold"] == cal["threshold"] < 1.41 and body["threshold"] != 0.6
    assert body["previous_threshold"] == 0.6 and "images" not in body
    assert (cal["n_pairs"], cal["n_same"], cal["n_different"], cal["people"], cal["faces"]) == (3, 1, 2, 2, 3)
    assert (cal["auc"], cal["eer"], cal["far"], cal["frr"]) == (1.0, 0.0, 0.0, 0.0)
    assert cal["source"] == "gallery (3 faces of 2 people)" and cal["created"]
    t = body["threshold"]

    r = client.get("/v1/faces/gallery")
    assert r.json()["threshold"] == t and r.json()["calibrated"] is True and "note" not in r.json()
    assert r.json()["calibration"]["auc"] == 1.0
    # identify and verify use the calibrated threshold from now on (an explicit one still wins)
    r = client.post("/v1/faces/identify", files={"file": ("f.png", png_bytes(FACE), "image/png")})
    assert r.status_code == 200 and r.json()["threshold"] == t, r.text
    r = client.post("/v1/faces/verify", files={"image_a": ("a.png", png_bytes(FACE), "image/png"),
                                               "image_b": ("b.png", png_bytes(FLIPPED), "image/png")})
    assert r.status_code == 200 and r.json()["threshold"] == t, r.text
    r = client.post("/v1/faces/verify", json={"image_a": {"b64": _b64(FACE)}, "image_b": {"b64": _b64(FLIPPED)},
                                              "threshold": 0.5})
    assert r.status_code == 200 and r.json()["threshold"] == 0.5, r.text


def test_a_threshold_outside_the_embeddings_range_is_refused() -> None:
    from pixlearn.serve.errors import ApiError
    from pixlearn.serve.routes_faces import _calibrate_groups

    eye = np.eye(128, dtype=np.float32)
    with pytest.raises(ApiError, match=r"outside \(0, 4\]"):  # same pair 10 apart, different ones 30: threshold 20
        _calibrate_groups({"a": np.stack([0 * eye[0], 10 * eye[1]]), "b": 30 * eye[2:3]}, "test")


def test_calibrate_a_large_gallery_on_a_sample(client, empty_gallery, monkeypatch) -> None:
    from pixlearn.serve import routes_faces

    rng = np.random.default_rng(0)
    for k in range(4):  # 4 people, 2 faces each; at most 5 faces used
        centre = 0.1 * rng.normal(size=128).astype(np.float32)  # about 1.6 apart, like face embeddings
        empty_gallery.add(f"p{k}", centre + 0.01 * rng.normal(size=(2, 128)).astype(np.float32), [{}, {}])
    monkeypatch.setattr(routes_faces, "MAX_CALIBRATION_FACES", 5)
    groups, total = routes_faces.gallery_groups(client.app.state.engine, limit=5)
    assert total == 8 and sum(len(v) for v in groups.values()) == 5
    assert routes_faces.gallery_groups(client.app.state.engine, limit=5)[0].keys() == groups.keys()  # seeded
    r = client.post("/v1/faces/calibrate")
    assert r.status_code == 200, r.text
    cal = r.json()["calibration"]
    assert cal["faces"] == 5 and cal["n_pairs"] == 10
    assert cal["source"] == f"gallery (5 faces of {len(groups)} people, a sample of the 8 enrolled)"


def test_calibrate_from_a_zip(client, empty_gallery) -> None:
    members = {
        "people/eileen/a.png": png_bytes(FACE),
        "people/eileen/b.png": png_bytes(FLIPPED),
        "people/eileen/wall.png": png_bytes(BLANK),
        "people/other/c.png": png_bytes(DARK),
        "people/other/bad.png": b"not an image",
        "people/notes.txt": b"ignored",
    }
    r = client.post("/v1/faces/calibrate?detector=hog",
                    files={"archive": ("people.zip", _zip(members), "application/zip")})
    assert r.status_code == 200, r.text
    body = r.json()
    cal = body["calibration"]
    assert (cal["n_pairs"], cal["n_same"], cal["n_different"], cal["people"], cal["faces"]) == (3, 1, 2, 2, 3)
    assert cal["source"].startswith("zip people.zip (5 images, 2 skipped; detector hog")
    assert body["previous_threshold"] == 0.6 and body["threshold"] == cal["threshold"] != 0.6
    rows = {r["filename"]: r for r in body["images"]}
    assert rows["people/eileen/a.png"]["status"] == "used" and rows["people/eileen/a.png"]["person"] == "eileen"
    assert rows["people/other/c.png"]["person"] == "other"
    assert "no face" in rows["people/eileen/wall.png"]["reason"]
    assert rows["people/other/bad.png"]["status"] == "skipped" and "bad.png" in rows["people/other/bad.png"]["reason"]
    assert client.get("/v1/faces/gallery").json()["calibration"] == cal
    # the zip as the raw body gives the same
    r = client.post("/v1/faces/calibrate", content=_zip(members), headers={"Content-Type": "application/zip"})
    assert r.status_code == 200 and r.json()["threshold"] == cal["threshold"], r.text
    assert r.json()["calibration"]["source"].startswith("zip body.zip (5 images, 2 skipped")
    r = client.post("/v1/faces/verify", json={"image_a": {"b64": _b64(FACE)}, "image_b": {"b64": _b64(FLIPPED)}})
    assert r.status_code == 200 and r.json()["threshold"] == cal["threshold"], r.text

    # a zip that gives too few pairs: a 400 saying what is missing, with the rows
    r = client.post("/v1/faces/calibrate", files={"archive": ("one.zip", _zip({"eileen/a.png": png_bytes(FACE),
                                                                                "x.png": png_bytes(FACE)}))})
    assert r.status_code == 400, r.text
    assert "at least 2 people" in r.json()["error"]["message"]
    status = {row["filename"]: row["status"] for row in r.json()["images"]}
    assert status == {"eileen/a.png": "used", "x.png": "skipped"}
    # a refused calibration stores nothing
    assert client.get("/v1/faces/gallery").json()["calibration"]["source"].startswith("zip body.zip")


def test_calibrate_zip_safety_and_bounds(client, tmp_path) -> None:
    from fastapi.testclient import TestClient

    evil = _zip({"../escape/a.png": png_bytes(FACE), "b/a.png": png_bytes(FACE)})
    cases = [
        (client.post("/v1/faces/calibrate", files={"archive": ("evil.zip", evil)}), 400, "path traversal"),
        (client.post("/v1/faces/calibrate", files={"archive": ("x.zip", b"not a zip")}), 400, "not a zip"),
        (client.post("/v1/faces/calibrate", files={"archive": ("t.zip", _zip({"a/x.txt": b"x"}))}), 400, "no images"),
        (client.post("/v1/faces/calibrate", files={"file": ("p.zip", _zip({"a/x.png": b"x"}))}), 400, "'archive'"),
        (client.post("/v1/faces/calibrate?detector=haar", files={"archive": ("p.zip", evil)}), 400, "hog"),
        (client.post("/v1/faces/calibrate", content=b"x", headers={"Content-Type": "text/plain"}), 415, "archive"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, r.text
        assert words in r.json()["error"]["message"], r.text
    assert "reasons" in cases[0][0].json()
    assert client.get("/v1/faces/gallery").json()["calibrated"] is False
    with TestClient(_app(tmp_path, max_archive_images=3, workers=0)) as small:
        many = _zip({f"p{i}/{j}.png": png_bytes(BLANK) for i in range(2) for j in range(2)})
        r = small.post("/v1/faces/calibrate", files={"archive": ("many.zip", many)})
        assert r.status_code == 413 and "4 images" in r.json()["error"]["message"], r.text


def test_enroll_json(client, empty_gallery) -> None:
    r = client.post("/v1/faces/enroll", json={"name": "Eileen", "images": [
        {"b64": _b64(FACE)}, _b64(FLIPPED), {"b64": _b64(BLANK)}, {"b64": "@@@ not base64"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["added"], body["count"], body["refused"]) == ("Eileen", 2, 2, 2)
    rows = body["images"]
    assert [row["status"] for row in rows] == ["enrolled", "enrolled", "refused", "refused"]
    assert rows[0]["filename"] == "images[0].b64" and "no face" in rows[2]["reason"]
    assert "base64" in rows[3]["reason"]
    assert [(p["name"], p["count"]) for p in client.get("/v1/faces/gallery").json()["people"]] == [("Eileen", 2)]
    r = client.post("/v1/faces/identify", json={"image": {"b64": _b64(FACE)}})
    assert [f["name"] for f in r.json()["faces"]] == ["Eileen"]

    limit = client.app.state.settings.max_archive_images
    cases = [
        (client.post("/v1/faces/enroll", json={"images": [_b64(FACE)]}), 422, "name is required"),
        (client.post("/v1/faces/enroll", json={"name": "x"}), 422, "images is required"),
        (client.post("/v1/faces/enroll", json={"name": "x", "images": []}), 400, "at least one"),
        (client.post("/v1/faces/enroll", json={"name": "x", "images": "abc"}), 400, "list"),
        (client.post("/v1/faces/enroll", json={"name": "x", "images": [7]}), 400, "images[0]"),
        (client.post("/v1/faces/enroll", json={"name": "x", "images": ["a"] * (limit + 1)}), 413, "limit"),
        (client.post("/v1/faces/enroll", json={"name": "../x", "images": [_b64(FACE)]}), 400, "person name"),
        (client.post("/v1/faces/enroll", json={"name": "x", "images": [_b64(FACE)], "upsample": 9}), 400, "upsample"),
        (client.post("/v1/faces/enroll", json=[1]), 400, "object"),
        (client.post("/v1/faces/enroll", content=b"{nope", headers={"Content-Type": "application/json"}), 400,
         "JSON"),
        (client.post("/v1/faces/enroll", content=b"x", headers={"Content-Type": "text/plain"}), 415, "Content-Type"),
        # multipart keeps its messages
        (client.post("/v1/faces/enroll", files=[("files", ("f.png", png_bytes(FACE), "image/png"))]), 422, "name"),
        (client.post("/v1/faces/enroll", data={"name": "x"}), 422, "files is required"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (r.request.content[:80], r.text)
        assert words in r.json()["error"]["message"], r.text


def test_verify_json(client) -> None:
    r = client.post("/v1/faces/verify", json={"image_a": {"b64": _b64(FACE)}, "image_b": _b64(FLIPPED)})
    assert r.status_code == 200, r.text
    assert r.json()["same"] is True and r.json()["threshold"] == 0.6
    r = client.post("/v1/faces/verify?threshold=0.0001", json={"image_a": {"b64": _b64(FACE)},
                                                               "image_b": {"b64": _b64(FLIPPED)}})
    assert r.json()["same"] is False and r.json()["threshold"] == 0.0001
    cases = [
        (client.post("/v1/faces/verify", json={"image_a": {"b64": _b64(FACE)}}), 422, "image_b is required"),
        (client.post("/v1/faces/verify", json={"image_a": {"b64": _b64(FACE)}, "image_b": {"b64": _b64(BLANK)}}),
         400, "no face"),
        (client.post("/v1/faces/verify", json={"image_a": {"x": 1}, "image_b": {"b64": _b64(FACE)}}), 400, "image_a"),
        (client.post("/v1/faces/verify", json={"image_a": {"b64": "@@"}, "image_b": {"b64": _b64(FACE)}}), 400,
         "base64"),
        (client.post("/v1/faces/verify", json={"image_a": {"b64": _b64(FACE)}, "image_b": {"b64": _b64(FACE)},
                                               "threshold": 5}), 400, "threshold"),
        (client.post("/v1/faces/verify", files={"image_a": ("a.png", png_bytes(FACE), "image/png")}), 422, "image_b"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, r.text
        assert words in r.json()["error"]["message"], r.text


def test_openapi_and_api_keys(client, tmp_path) -> None:
    from fastapi.testclient import TestClient

    paths = client.get("/openapi.json").json()["paths"]
    op = paths["/v1/faces/calibrate"]["post"]
    assert op["summary"] and "archive" in op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    for path in ("/v1/faces/enroll", "/v1/faces/verify"):
        content = paths[path]["post"]["requestBody"]["content"]
        assert {"multipart/form-data", "application/json"} <= set(content), path
    assert "images" in paths["/v1/faces/enroll"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]

    with TestClient(_app(tmp_path, api_keys=["k1"], workers=0)) as c:
        assert c.post("/v1/faces/calibrate").status_code == 401
        assert c.post("/v1/faces/enroll", json={"name": "x", "images": [_b64(FACE)]}).status_code == 401
        assert c.post("/v1/faces/verify", json={"image_a": "x", "image_b": "y"}).status_code == 401
        r = c.post("/v1/faces/calibrate", headers={"X-API-Key": "k1"})
        assert r.status_code == 400 and "0 face(s)" in r.json()["error"]["message"]  # let through, the gallery empty


def test_calibration_in_postgresql(settings, postgres_db) -> None:
    """A calibration from the gallery stored in PostgreSQL (a throwaway cluster; skipped without one) reads back the
    same and sets the threshold."""
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.routes_faces import DatabaseGalleryStore

    with TestClient(create_app(settings.model_copy(update={"db": postgres_db, "workers": 0}))) as c:
        store = DatabaseGalleryStore(c.app.state.engine)
        eye = np.eye(128, dtype=np.float32)
        store.add("ada", np.stack([eye[0], eye[0] + 0.1 * eye[1]]), [{}, {}])
        store.add("bob", eye[2:3], [{}])
        r = c.post("/v1/faces/calibrate")
        assert r.status_code == 200, r.text
        cal = r.json()["calibration"]
        body = c.get("/v1/faces/gallery").json()
        assert body["calibration"] == cal and body["threshold"] == cal["threshold"] != 0.6
