"""/v1/collections: create, list, add images (a bad file is its own error), search by image, thumbnails, delete;
bounds and unknown ids; concurrent adds to one collection lose nothing; API keys guard every route."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.serve.conftest import png_bytes


def _pictures() -> dict[str, np.ndarray]:
    """Five distinct small photos bundled with scikit-image (no network, no ../shared)."""
    import cv2
    from skimage import data

    out = {}
    for name in ("astronaut", "camera", "coins", "chelsea", "coffee"):
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out[name] = cv2.resize(img, (96, 72), interpolation=cv2.INTER_AREA)
    return out


PICS = _pictures()


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """One service for the module (each test makes its own collections); ``workers=1``."""
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    s = ServeSettings(storage=tmp_path_factory.mktemp("collections") / "s", db=None, api_keys=[], models=[],
                      allowed_roots=[], workers=1)
    with TestClient(create_app(s)) as c:
        yield c


def _files(names) -> list:
    return [("files", (f"{n}.png", png_bytes(PICS[n]), "image/png")) for n in names]


def _create(client, name="photos", model="phash") -> dict:
    r = client.post("/v1/collections", json={"name": name, "model": model})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_list_get_delete(client) -> None:
    settings = client.app.state.settings
    before = [x["name"] for x in client.get("/v1/collections").json()["collections"]]
    c = _create(client)
    assert c["name"] == "photos" and c["model"] == "phash" and c["kind"] == "phash" and c["count"] == 0
    assert len(c["id"]) == 32
    r = client.post("/v1/collections", data={"name": "second", "model": "phash"})  # a form works too
    assert r.status_code == 201, r.text
    assert [x["name"] for x in client.get("/v1/collections").json()["collections"]][len(before):] == ["photos", "second"]
    assert client.get(f"/v1/collections/{c['id']}").json() == c
    assert client.post(f"/v1/collections/{c['id']}/images", files=_files(["camera"])).status_code == 200
    folder = Path(settings.storage) / "collections" / c["id"]
    assert (folder / "images").is_dir()
    r = client.delete(f"/v1/collections/{c['id']}")
    assert r.status_code == 200 and r.json() == {"deleted": c["id"]}
    assert not folder.exists()
    assert client.get(f"/v1/collections/{c['id']}").status_code == 404
    from sqlalchemy import select

    from pixlearn.serve.routes_collections import collection_images_table

    with client.app.state.engine.connect() as conn:
        assert conn.execute(select(collection_images_table).where(
            collection_images_table.c.collection_id == c["id"])).first() is None


def test_add_search_thumbnail(client) -> None:
    c = _create(client)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("zipped/coffee.png", png_bytes(PICS["coffee"]))
        zf.writestr("zipped/broken.jpg", b"not a jpeg")
    files = [*_files(["astronaut", "camera", "coins", "chelsea"]),
             ("files", ("bad.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")),
             ("files", ("again.png", png_bytes(PICS["camera"]), "image/png")),  # the same pixels: skipped
             ("archive", ("more.zip", buf.getvalue(), "application/zip"))]
    r = client.post(f"/v1/collections/{c['id']}/images", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(a["filename"] for a in body["added"]) == ["astronaut.png", "camera.png", "chelsea.png",
                                                            "coins.png", "zipped/coffee.png"]
    assert [s["filename"] for s in body["skipped"]] == ["again.png"]
    assert sorted(e["filename"] for e in body["errors"]) == ["bad.png", "zipped/broken.jpg"]
    assert body["collection"]["count"] == 5
    ids = {a["filename"]: a["image_id"] for a in body["added"]}
    assert all(len(i) == 16 for i in ids.values())

    r = client.post(f"/v1/collections/{c['id']}/search", files={"file": ("q.png", png_bytes(PICS["coins"]), "image/png")},
                    data={"top_k": "3"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 3 and [x["rank"] for x in results] == [1, 2, 3]
    best = results[0]
    assert best["image_id"] == ids["coins.png"] and best["filename"] == "coins.png"
    assert best["score"] >= 0.95 and best["distance"] <= 2
    assert best["url"] == f"/v1/collections/{c['id']}/images/{best['image_id']}"

    thumb = client.get(best["url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from pixlearn.io import read_image

    assert read_image(io.BytesIO(thumb.content)).shape[:2] == (72, 96)  # small images are their own thumbnail
    full = client.get(best["url"], params={"size": "full"})
    assert full.status_code == 200 and full.content[:3] == b"\xff\xd8\xff"

    # a second add: the collection grows and older images are still found
    r = client.post(f"/v1/collections/{c['id']}/images",
                    files=[("files", ("flip.png", png_bytes(PICS["astronaut"][:, ::-1].copy()), "image/png"))])
    assert r.status_code == 200 and r.json()["collection"]["count"] == 6
    r = client.post(f"/v1/collections/{c['id']}/search?top_k=1",
                    files={"file": ("q.png", png_bytes(PICS["chelsea"]), "image/png")})
    assert r.json()["results"][0]["image_id"] == ids["chelsea.png"]


def test_large_image_gets_a_small_thumbnail(client) -> None:
    c = _create(client)
    big = np.kron(PICS["camera"], np.ones((6, 6, 1), np.uint8))  # 432 x 576
    r = client.post(f"/v1/collections/{c['id']}/images", files=[("files", ("big.png", png_bytes(big), "image/png"))])
    image_id = r.json()["added"][0]["image_id"]
    from pixlearn.io import read_image

    thumb = read_image(io.BytesIO(client.get(f"/v1/collections/{c['id']}/images/{image_id}").content))
    assert max(thumb.shape[:2]) == 256
    full = read_image(io.BytesIO(client.get(f"/v1/collections/{c['id']}/images/{image_id}?size=full").content))
    assert full.shape[:2] == (432, 576)


def test_search_an_empty_collection(client) -> None:
    c = _create(client)
    r = client.post(f"/v1/collections/{c['id']}/search", files={"file": ("q.png", png_bytes(PICS["coins"]), "image/png")})
    assert r.status_code == 200 and r.json()["results"] == []


def test_errors(client) -> None:
    c = _create(client)
    cid = c["id"]
    q = {"file": ("q.png", png_bytes(PICS["coins"]), "image/png")}
    cases = [
        (client.post("/v1/collections", json={"model": "phash"}), 400, "name"),
        (client.post("/v1/collections", json={"name": "x" * 101, "model": "phash"}), 400, "name"),
        (client.post("/v1/collections", json={"name": "a", "model": "no_such_model"}), 400, "phash"),
        (client.post("/v1/collections", json={"name": "a", "model": "resnet18"}), 400, "pixlearn weights add"),
        (client.post("/v1/collections", json=["a"]), 400, "JSON object"),
        (client.post("/v1/collections", json={"name": 5, "model": "phash"}), 400, "text"),
        (client.get("/v1/collections/nothex"), 404, "32 hex"),
        (client.get("/v1/collections/" + "0" * 32), 404, "no collection"),
        (client.delete("/v1/collections/" + "0" * 32), 404, "no collection"),
        (client.post(f"/v1/collections/{'0' * 32}/images", files=_files(["coins"])), 404, "no collection"),
        (client.post(f"/v1/collections/{cid}/images"), 400, "no images"),
        (client.post(f"/v1/collections/{cid}/images",
                     files=[("archive", ("a.zip", b"not a zip", "application/zip"))]), 400, "not a zip"),
        (client.post(f"/v1/collections/{'0' * 32}/search", files=q), 404, "no collection"),
        (client.post(f"/v1/collections/{cid}/search"), 400, "no image"),
        (client.post(f"/v1/collections/{cid}/search?top_k=0", files=q), 400, "top_k"),
        (client.post(f"/v1/collections/{cid}/search?top_k=101", files=q), 400, "top_k"),
        (client.post(f"/v1/collections/{cid}/search?top_k=abc", files=q), 400, "top_k"),
        (client.post(f"/v1/collections/{cid}/search", files={"file": ("q.png", b"garbage", "image/png")}), 400, "q.png"),
        (client.get(f"/v1/collections/{cid}/images/../../pixlearn.db"), 404, ""),
        (client.get(f"/v1/collections/{cid}/images/0123456789abcdef"), 404, "no image"),
        (client.get(f"/v1/collections/{cid}/images/zz"), 404, "16 hex"),
        (client.get(f"/v1/collections/{cid}/images/0123456789abcdef?size=huge"), 400, "size"),
    ]
    for r, status, words in cases:
        assert r.status_code == status, (r.request.url, r.text)
        assert words in r.json()["error"]["message"], (r.request.url, r.text)


def test_too_many_files_in_one_request(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    s = ServeSettings(storage=tmp_path / "s", db=None, api_keys=[], models=[], allowed_roots=[], max_archive_images=2,
                      workers=0)
    with TestClient(create_app(s)) as client:
        c = _create(client)
        r = client.post(f"/v1/collections/{c['id']}/images", files=_files(["coins", "camera", "coffee"]))
        assert r.status_code == 413 and "limit of 2" in r.json()["error"]["message"]


def test_concurrent_adds_lose_nothing(client) -> None:
    c = _create(client)
    rng = np.random.default_rng(0)
    batches = [[("files", (f"n{b}-{i}.png", png_bytes(rng.integers(0, 255, (24, 24, 3), np.uint8)), "image/png"))
                for i in range(3)] for b in range(4)]
    answers: list = []

    def add(files) -> None:
        answers.append(client.post(f"/v1/collections/{c['id']}/images", files=files))

    threads = [threading.Thread(target=add, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 4
    assert client.get(f"/v1/collections/{c['id']}").json()["count"] == 12
    folder = Path(client.app.state.settings.storage) / "collections" / c["id"]
    assert [p.name for p in folder.glob("index-*")] == ["index-4"]  # older generations are removed
    assert len(list((folder / "images").iterdir())) == 12


def test_registered_model_collection(tmp_path, trained_run) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    import shutil

    from pixlearn.serve import routes_collections

    run = tmp_path / "runs" / "colours"
    shutil.copytree(trained_run, run)
    s = ServeSettings(storage=tmp_path / "s", db=None, api_keys=[], models=[run], allowed_roots=[])
    with TestClient(create_app(s)) as client:
        c = _create(client, model="colours")
        assert c["kind"] == "registered" and "run_dir" not in c and "spec" not in c
        r = client.post(f"/v1/collections/{c['id']}/images", files=_files(["coins", "chelsea", "coffee"]))
        assert r.status_code == 200 and len(r.json()["added"]) == 3, r.text
        r = client.post(f"/v1/collections/{c['id']}/search",
                        files={"file": ("q.png", png_bytes(PICS["chelsea"]), "image/png")})
        assert r.status_code == 200, r.text
        best = r.json()["results"][0]
        assert best["filename"] == "chelsea.png" and best["score"] == pytest.approx(1.0, abs=0.02)
        assert "distance" not in best
        # the run folder goes away: 503 naming the model, never the server's path
        shutil.rmtree(run)
        routes_collections._embedders.clear()
        routes_collections._indexes.clear()
        r = client.post(f"/v1/collections/{c['id']}/search",
                        files={"file": ("q.png", png_bytes(PICS["chelsea"]), "image/png")})
        assert r.status_code == 503 and "'colours'" in r.json()["error"]["message"], r.text
        assert str(tmp_path) not in r.text


def test_api_keys_guard_collections(tmp_path) -> None:
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app
    from pixlearn.serve.settings import ServeSettings

    s = ServeSettings(storage=tmp_path / "s", db=None, api_keys=["k1"], models=[], allowed_roots=[], workers=0)
    with TestClient(create_app(s)) as client:
        cid = "0" * 32
        for method, url in [("post", "/v1/collections"), ("get", "/v1/collections"), ("get", f"/v1/collections/{cid}"),
                            ("delete", f"/v1/collections/{cid}"), ("post", f"/v1/collections/{cid}/images"),
                            ("post", f"/v1/collections/{cid}/search"),
                            ("get", f"/v1/collections/{cid}/images/0123456789abcdef"),
                            ("delete", f"/v1/collections/{cid}/images/0123456789abcdef")]:
            assert getattr(client, method)(url).status_code == 401, url
        r = client.post("/v1/collections", json={"name": "a", "model": "phash"}, headers={"X-API-Key": "k1"})
        assert r.status_code == 201


def test_the_api_docs_list_the_new_routes(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in [("/v1/collections", "post"), ("/v1/collections", "get"), ("/v1/collections/{collection_id}", "delete"),
                         ("/v1/collections/{collection_id}/images", "post"),
                         ("/v1/collections/{collection_id}/search", "post"),
                         ("/v1/collections/{collection_id}/images/{image_id}", "get"),
                         ("/v1/faces/detect", "post"), ("/v1/faces/enroll", "post"), ("/v1/faces/identify", "post"),
                         ("/v1/faces/verify", "post"), ("/v1/faces/gallery", "get"),
                         ("/v1/faces/gallery/{name}", "delete"), ("/v1/text", "post")]:
        op = paths[path][method]
        assert op.get("summary"), (path, method)
        assert {"400", "401", "413"} <= set(op["responses"]) or method != "post", (path, op["responses"].keys())
    assert "image/jpeg" in paths["/v1/collections/{collection_id}/images/{image_id}"]["get"]["responses"]["200"]["content"]
    text_params = {p["name"] for p in paths["/v1/text"]["post"]["parameters"]}
    assert {"min_confidence", "rotation", "max_side"} <= text_params
    assert client.get("/docs").status_code == 200


def test_delete_one_image(client) -> None:
    settings = client.app.state.settings
    c = _create(client)
    r = client.post(f"/v1/collections/{c['id']}/images", files=_files(["coins", "camera", "chelsea"]))
    ids = {a["filename"]: a["image_id"] for a in r.json()["added"]}
    url = f"/v1/collections/{c['id']}/images/{ids['coins.png']}"
    r = client.delete(url)
    assert r.status_code == 200, r.text
    assert r.json()["deleted"] == ids["coins.png"] and r.json()["collection"]["count"] == 2
    assert client.get(url).status_code == 404 and client.delete(url).status_code == 404
    folder = Path(settings.storage) / "collections" / c["id"]
    assert not (folder / "images" / f"{ids['coins.png']}.jpg").exists()
    assert not (folder / "thumbs" / f"{ids['coins.png']}.jpg").exists()
    r = client.post(f"/v1/collections/{c['id']}/search", files={"file": ("q.png", png_bytes(PICS["coins"]), "image/png")})
    assert ids["coins.png"] not in [x["image_id"] for x in r.json()["results"]] and len(r.json()["results"]) == 2
    # the same pixels can come back afterwards
    r = client.post(f"/v1/collections/{c['id']}/images", files=_files(["coins"]))
    assert len(r.json()["added"]) == 1 and r.json()["collection"]["count"] == 3
    assert client.delete(f"/v1/collections/{c['id']}/images/zz").status_code == 404
