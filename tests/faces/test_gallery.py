"""Landmarks, alignment, embeddings, the gallery (enroll, identify, verify, delete), calibration and their errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

import pixlearn
from pixlearn.tasks.faces import (
    Calibration,
    FileGalleryStore,
    Gallery,
    GalleryError,
    GalleryNotFoundError,
    GalleryStore,
    NoFaceError,
    align,
    calibrate,
    embed,
    landmarks,
)
from pixlearn.tasks.faces.gallery import MemoryGalleryStore, check_person_name


def _unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    v = rng.normal(size=(n, 128))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_landmarks_alignment_and_embeddings(astro, variants) -> None:
    from pixlearn.ops.faces import detect_faces

    faces = detect_faces(astro, upsample=0)
    (pts,) = landmarks(astro, faces)
    x0, y0, x1, y1 = faces[0].box
    assert pts.shape == (5, 2) and pts.dtype == np.float32
    assert ((pts[:, 0] >= x0 - 5) & (pts[:, 0] <= x1 + 5) & (pts[:, 1] >= y0 - 5) & (pts[:, 1] <= y1 + 5)).all()
    assert pts[4, 1] > pts[:4, 1].max()  # the nose is below the eyes
    (crop,) = align(astro, faces, size=96, padding=0.3)
    assert crop.shape == (96, 96, 3) and crop.dtype == np.uint8
    (e,) = embed(astro, upsample=0)
    assert e.vector.shape == (128,) and e.vector.dtype == np.float32 and 0.5 < np.linalg.norm(e.vector) < 3
    assert e.box == faces[0].box and np.allclose(e.landmarks, pts)
    for name in ("flipped", "scaled", "shifted"):  # the same face: well inside dlib's 0.6
        (other,) = embed(variants[name], upsample=0)
        assert np.linalg.norm(other.vector - e.vector) < 0.35, name
    two = embed(variants["two"], upsample=0)
    assert len(two) == 2 and np.linalg.norm(two[0].vector - two[1].vector) < 0.35
    assert embed(variants["blank"]) == []
    with pytest.raises(pixlearn.ConfigError, match=r"jitter must be an integer in \[0, 100\]"):
        embed(astro, jitter=1000)
    with pytest.raises(pixlearn.ConfigError, match=r"size must be an integer in \[16, 1024\]"):
        align(astro, faces, size=5000)


def test_matching_hand_made_vectors_of_different_people() -> None:
    rng = np.random.default_rng(0)
    ada, bob = _unit(rng), _unit(rng)  # random unit vectors: about 1.41 apart
    store = MemoryGalleryStore()
    assert isinstance(store, GalleryStore) and isinstance(FileGalleryStore.__new__(FileGalleryStore), GalleryStore)
    store.add("Ada", np.concatenate([ada, ada + 0.01]), [{"source": "a1"}, {"source": "a2"}])
    store.add("Bob", bob, [{"source": "b1"}])
    g = Gallery(store)
    near_ada = ada + 0.2 * _unit(rng)  # distance 0.2
    stranger = _unit(rng)
    rows = g.match(np.concatenate([near_ada, bob, stranger]), top_k=2)
    assert [r["name"] for r in rows] == ["Ada", "Bob", "unknown"]
    assert rows[0]["distance"] == pytest.approx(0.2, abs=0.02) and rows[0]["threshold"] == 0.6
    assert [c["name"] for c in rows[0]["candidates"]] == ["Ada", "Bob"]
    assert g.match(near_ada, threshold=0.1)[0]["name"] == "unknown"  # below the threshold: unknown
    assert g.people() == [{"name": "Ada", "count": 2, "created": store.people()[0]["created"]},
                          {"name": "Bob", "count": 1, "created": store.people()[1]["created"]}]
    assert g.delete("Ada") == 2 and [p["name"] for p in g.people()] == ["Bob"]
    with pytest.raises(GalleryError, match="no person 'Ada'"):
        g.delete("Ada")
    with pytest.raises(GalleryError, match="holds no one"):
        Gallery(MemoryGalleryStore()).match(ada)


def test_enroll_identify_and_verify_on_a_file_gallery(tmp_path: Path, image_files, variants) -> None:
    g = Gallery(tmp_path / "g.npz", upsample=0)
    result = g.enroll("Astro Naut", [image_files["astro"], image_files["two"], image_files["blank"], image_files["bad"],
                                     variants["scaled"]])
    assert result["added"] == 2 and result["count"] == 2 and result["refused"] == 3
    status = {Path(r["source"]).name: (r["status"], r["reason"]) for r in result["images"]}
    assert status["astro.png"] == ("enrolled", None) and status["image 4"] == ("enrolled", None)
    assert status["two.png"][0] == "refused" and "2 faces found" in status["two.png"][1]
    assert "no face found" in status["blank.png"][1]
    assert status["bad.png"][1].startswith("ImageDecodeError")
    g.store.add("Other", _unit(np.random.default_rng(1)), [{"source": "hand-made"}])

    again = Gallery(tmp_path / "g.npz", upsample=0)  # read back from the file
    (face,) = again.identify(image_files["flipped"])
    assert face["name"] == "Astro Naut" and face["distance"] < 0.35 and face["score"] > 0
    assert [f["name"] for f in again.identify(variants["two"])] == ["Astro Naut", "Astro Naut"]
    (strict,) = again.identify(variants["shifted"], threshold=0.01)
    assert strict["name"] == "unknown"
    assert again.identify(variants["blank"]) == []

    same = again.verify(image_files["astro"], variants["flipped"])
    assert same["same"] is True and same["distance"] < 0.35 and same["threshold"] == 0.6
    assert again.verify(image_files["astro"], variants["flipped"], threshold=0.05)["same"] is False
    with pytest.raises(NoFaceError, match="image_b"):
        again.verify(image_files["astro"], variants["blank"])
    with pytest.raises(pixlearn.ImageDecodeError):
        again.identify(image_files["bad"])


def test_delete_removes_every_vector_and_photo_from_the_file(tmp_path: Path, image_files, variants) -> None:
    path = tmp_path / "g.npz"
    g = Gallery(path, upsample=0)
    g.enroll("Zelda", [image_files["astro"], variants["flipped"]], keep_photos=True)
    g.enroll("Link", [variants["scaled"]])  # no photos kept: embeddings only
    store = g.store
    assert len(store.photos("Zelda")) == 2 and store.photos("Link") == []
    png = store.photos("Zelda")[0]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Zelda" in path.read_bytes()

    assert g.delete("Zelda") == 2
    raw = path.read_bytes()
    assert b"Zelda" not in raw and png not in raw and b"astro.png" not in raw  # no name, photo or source left
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        assert not [k for k in data.files if k.startswith("photo_")]
        assert data["vectors"].shape == (1, 128)
        header = json.loads(bytes(data["header"]).decode())
    assert [e["name"] for e in header["entries"]] == ["Link"] and list(header["people"]) == ["Link"]
    assert [p["name"] for p in g.people()] == ["Link"]


def test_calibrate_on_constructed_pairs_and_groups_then_used_by_identify(tmp_path: Path) -> None:
    cal = calibrate([(0.2, True), (0.3, True), (0.35, True), (0.7, False), (0.8, False), (0.5, False)])
    assert cal.threshold == pytest.approx(0.425) and cal.auc == 1.0 and cal.far == 0 and cal.frr == 0
    assert (cal.n_pairs, cal.n_same, cal.n_different, cal.source) == (6, 3, 3, "pairs")

    overlap = calibrate([(0.2, True), (0.6, True), (0.4, False), (0.9, False)])
    assert overlap.auc == 0.75 and overlap.eer == pytest.approx(0.5) and overlap.far + overlap.frr == pytest.approx(0.5)

    rng = np.random.default_rng(2)
    centres = _unit(rng, 3)
    groups = {f"p{k}": centres[k] + 0.1 * _unit(rng, 4) for k in range(3)}  # tight clusters about 1.4 apart
    store = MemoryGalleryStore()
    g = Gallery(store)
    assert g.threshold == 0.6 and g.calibration is None
    grouped = g.calibrate(groups)
    assert grouped.auc == 1.0 and grouped.people == 3 and grouped.faces == 12 and grouped.n_same == 18
    assert 0.2 < grouped.threshold < 1.3 and g.threshold == grouped.threshold
    assert isinstance(g.calibration, Calibration) and g.calibration.to_dict() == grouped.to_dict()
    store.add("p0", groups["p0"], [{} for _ in range(4)])
    probe = centres[0] + 0.05 * _unit(rng)
    assert g.match(probe)[0] == {**g.match(probe)[0], "name": "p0", "threshold": grouped.threshold}

    vec_pairs = [(centres[0], centres[0] + 0.05, True), (centres[0], centres[1], False)]
    assert calibrate(vec_pairs).auc == 1.0
    with pytest.raises(pixlearn.ConfigError, match="pairs of the same person and of different people"):
        calibrate([(0.2, True), (0.3, True)])
    with pytest.raises(pixlearn.ConfigError, match="calibration pair 0"):
        calibrate([("x", "y", "z", "w")])


def test_calibrate_a_folder_of_people_is_stored_in_the_file(tmp_path: Path, image_files, variants) -> None:
    from pixlearn.io import write_image

    root = tmp_path / "people"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    write_image(root / "a" / "1.png", variants["flipped"])
    write_image(root / "a" / "2.png", variants["scaled"])
    write_image(root / "b" / "1.png", variants["shifted"])
    write_image(root / "b" / "none.png", variants["blank"])
    (root / "b" / "broken.png").write_bytes(b"garbage")
    g = Gallery(tmp_path / "g.npz", upsample=0)
    cal = g.calibrate(root)
    assert cal.n_same == 1 and cal.n_different == 2 and cal.faces == 3 and cal.people == 2
    assert "folder" in cal.source and "5 images, 2 skipped" in cal.source
    assert Gallery(tmp_path / "g.npz").calibration == cal  # stored in the file
    with pytest.raises(pixlearn.ConfigError, match="at least two people"):
        g.calibrate(root / "a")


def test_bad_inputs_are_typed_errors(tmp_path: Path, astro) -> None:
    for bad in ("", "../etc", "a/b", "x" * 65, "unknown", " padded", "tab\there"):
        with pytest.raises(GalleryError):
            check_person_name(bad)
    assert check_person_name("Zoë O'Neil-Smith Jr.") == "Zoë O'Neil-Smith Jr."
    g = Gallery(MemoryGalleryStore())
    with pytest.raises(GalleryError):
        g.enroll("a/b", [astro])
    for t in ("nan", "inf", 0, -1, 5, "abc"):
        with pytest.raises(pixlearn.ConfigError, match="threshold"):
            g.match(_unit(np.random.default_rng(0)), threshold=t)
    with pytest.raises(GalleryNotFoundError, match="no such file; create one with pixlearn faces enroll"):
        FileGalleryStore(tmp_path / "missing.npz", create=False)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(GalleryError, match="not a pixlearn face gallery"):
        Gallery(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(GalleryError, match="not a pixlearn face gallery"):
        FileGalleryStore(other)
    assert other.read_bytes()[:2] == b"PK"  # refused, not overwritten
    with pytest.raises(pixlearn.ConfigError, match="upsample"):
        Gallery(MemoryGalleryStore(), upsample=7)
    with pytest.raises(GalleryError, match="must implement GalleryStore"):
        Gallery(object())  # type: ignore[arg-type]


def test_models_load_once_and_serve_threads_with_the_same_answers(astro, variants, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pixlearn.ops.faces import face_model

    assert face_model("embedding") is face_model("embedding")  # cached per process
    images = [astro, variants["flipped"], variants["shifted"], astro]
    serial = [embed(img, upsample=0)[0].vector for img in images]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda img: embed(img, upsample=0)[0].vector, images))
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded))

    store = FileGalleryStore(tmp_path / "g.npz")
    vecs = _unit(np.random.default_rng(3), 12)
    with ThreadPoolExecutor(4) as pool:  # concurrent adds through one store: none lost
        list(pool.map(lambda k: store.add(f"p{k % 3}", vecs[k], [{"source": str(k)}]), range(12)))
    names, matrix = store.vectors()
    assert len(names) == 12 and matrix.shape == (12, 128) and not matrix.flags.writeable
    assert [p["count"] for p in store.people()] == [4, 4, 4]


def test_calibrate_takes_a_folder_without_a_gallery(tmp_path: Path, variants) -> None:
    from pixlearn.io import write_image

    for who, key in (("a", "flipped"), ("a", "scaled"), ("b", "shifted")):
        write_image(tmp_path / who / f"{key}.png", variants[key])
    cal = calibrate(tmp_path, upsample=0)
    assert (cal.people, cal.faces, cal.n_pairs) == (2, 3, 3) and "3 images, 0 skipped" in cal.source
