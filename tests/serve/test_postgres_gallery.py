"""The face gallery and the collections in PostgreSQL (a throwaway cluster, tests/serve/pg.py; skipped without the
server binaries or psycopg): the same routes and store as on SQLite, and a deleted person or collection leaves no row."""

from __future__ import annotations

import numpy as np
from sqlalchemy import inspect, select

from tests.serve.conftest import png_bytes


def _client(settings, url):
    from fastapi.testclient import TestClient

    from pixlearn.serve.app import create_app

    return TestClient(create_app(settings.model_copy(update={"db": url, "workers": 0})))


def test_gallery_store_and_collections_in_postgresql(settings, postgres_db) -> None:
    from pixlearn.serve.routes_collections import collection_images_table, collections_table
    from pixlearn.serve.routes_faces import DatabaseGalleryStore, face_people_table, face_vectors_table

    rng = np.random.default_rng(0)
    with _client(settings, postgres_db) as c:
        engine = c.app.state.engine
        assert engine.dialect.name == "postgresql"
        assert {"face_people", "face_vectors", "face_gallery", "collections", "collection_images"} <= set(
            inspect(engine).get_table_names())
        store = DatabaseGalleryStore(engine)
        vectors = rng.normal(size=(3, 128)).astype(np.float32)
        store.add("Ada", vectors[:2], [{"source": "a.png", "box": [1, 2, 3, 4]}, {"source": "b.png"}])
        store.add("Grace", vectors[2:], [{"source": "g.png"}])
        names, matrix = store.vectors()
        assert names == ["Ada", "Ada", "Grace"] and np.array_equal(matrix, vectors)
        assert [(p["name"], p["count"]) for p in c.get("/v1/faces/gallery").json()["people"]] == [("Ada", 2), ("Grace", 1)]
        store.set_calibration({"threshold": 0.5, "auc": 0.99, "eer": 0.02, "far": 0.01, "frr": 0.03, "n_pairs": 10,
                               "n_same": 4, "n_different": 6})
        assert c.get("/v1/faces/gallery").json()["threshold"] == 0.5
        assert c.delete("/v1/faces/gallery/Ada").json() == {"deleted": "Ada", "removed": 2}
        with engine.connect() as conn:
            assert conn.execute(select(face_vectors_table).where(face_vectors_table.c.name == "Ada")).first() is None
            assert conn.execute(select(face_people_table).where(face_people_table.c.name == "Ada")).first() is None

        cid = c.post("/v1/collections", json={"name": "noise", "model": "phash"}).json()["id"]
        files = [("files", (f"n{i}.png", png_bytes(rng.integers(0, 255, (24, 24, 3), np.uint8)), "image/png"))
                 for i in range(3)]
        r = c.post(f"/v1/collections/{cid}/images", files=files)
        assert r.status_code == 200 and r.json()["collection"]["count"] == 3, r.text
        r = c.post(f"/v1/collections/{cid}/search", files={"file": files[1][1]})
        assert r.json()["results"][0]["filename"] == "n1.png"
        assert c.delete(f"/v1/collections/{cid}").status_code == 200
        with engine.connect() as conn:
            assert conn.execute(select(collections_table)).first() is None
            assert conn.execute(select(collection_images_table)).first() is None
