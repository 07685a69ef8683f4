"""The search index: build, search, incremental add, persistence, model refusal, unreadable files, index type, phash."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixlearn._core.errors import ConfigError
from pixlearn.search.embed import PHashEmbedder, TorchEmbedder
from pixlearn.search.index import Index, IndexMismatchError

pytest.importorskip("faiss")


def _pattern(seed: int, size: int = 40) -> np.ndarray:
    """A distinct smooth image per seed (low-frequency blobs: stable under resize and JPEG)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def _collection(tmp_path, n: int = 6):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(_pattern(i)).save(folder / f"img{i}.png")
    return folder


def _near_copy(src, dst) -> None:
    """Resized to 36 px and saved as JPEG quality 80."""
    Image.open(src).resize((36, 36), Image.BILINEAR).save(dst, format="JPEG", quality=80)


def _cnn(seed: int) -> TorchEmbedder:
    from pixlearn.models import create_model

    torch.manual_seed(seed)
    return TorchEmbedder(create_model("pixlearn_smallcnn_tiny", num_classes=2, img_size=32), name="tiny")


def test_build_search_finds_itself_then_its_near_copy(tmp_path):
    folder = _collection(tmp_path)
    _near_copy(folder / "img3.png", folder / "img3_copy.jpg")
    emb = _cnn(0)
    index = Index.build(folder, emb)
    assert index.index_type == "flat" and len(index) == 7
    rows = index.search(folder / "img3.png", top_k=3)
    assert rows[0]["path"].endswith("img3.png") and rows[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert rows[1]["path"].endswith("img3_copy.jpg")
    assert [r["rank"] for r in rows] == [1, 2, 3]
    vec = emb.embed([_pattern(1)])
    assert vec.dtype == np.float32 and np.linalg.norm(vec, axis=1) == pytest.approx(1.0, abs=1e-5)


def test_add_is_incremental_and_skips_known_fingerprints(tmp_path):
    folder = _collection(tmp_path, 4)
    index = Index.build(folder, PHashEmbedder())
    assert len(index.last_report.added) == 4
    extra = tmp_path / "extra.png"
    Image.fromarray(_pattern(10)).save(extra)
    same_bytes = tmp_path / "renamed_copy.png"
    same_bytes.write_bytes((folder / "img0.png").read_bytes())
    report = index.add([extra, same_bytes, folder / "img1.png"])
    assert report.added == [str(extra)]
    assert sorted(report.skipped) == sorted([str(same_bytes), str(folder / "img1.png")])
    assert len(index) == 5 and index.faiss_index.ntotal == 5


def test_persistence_round_trip(tmp_path):
    folder = _collection(tmp_path, 5)
    emb = _cnn(1)
    index = Index.build(folder, emb, out=tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["index_type"] == "flat" and manifest["model"]["dim"] == emb.dim
    assert manifest["model"]["preprocessing"]["img_size"] == [32, 32]
    assert {"path", "size", "sha256"} <= set(manifest["entries"][0])
    again = Index.load(tmp_path / "idx", embedder=emb)
    assert again.search(folder / "img2.png", top_k=5) == index.search(folder / "img2.png", top_k=5)
    report = again.add([folder / "img2.png"])  # fingerprints survive the round trip
    assert report.skipped == [str(folder / "img2.png")]


def test_query_with_another_model_is_refused(tmp_path):
    folder = _collection(tmp_path, 3)
    Index.build(folder, _cnn(0), out=tmp_path / "idx")
    index = Index.load(tmp_path / "idx", embedder=_cnn(0))  # same weights: accepted
    with pytest.raises(IndexMismatchError, match="weights_sha256"):
        index.search(folder / "img0.png", embedder=_cnn(1))
    with pytest.raises(IndexMismatchError, match="phash"):
        Index.load(tmp_path / "idx", embedder=PHashEmbedder())


def test_unreadable_files_are_reported_not_fatal(tmp_path):
    folder = _collection(tmp_path, 3)
    (folder / "broken.png").write_bytes(b"not an image at all")
    index = Index.build(folder, PHashEmbedder())
    assert len(index) == 3
    assert list(index.last_report.failed) == [str(folder / "broken.png")]
    report = index.add([tmp_path / "missing.png"])
    assert str(tmp_path / "missing.png") in report.failed and not report.added


def test_index_type_chosen_by_size(tmp_path):
    folder = _collection(tmp_path, 5)
    emb = _cnn(0)
    assert Index.build(folder, emb, hnsw_threshold=6).index_type == "flat"
    big = Index.build(folder, emb, hnsw_threshold=4, kind="hnsw")
    assert big.index_type == "hnsw"
    assert big.search(folder / "img4.png", top_k=1)[0]["path"].endswith("img4.png")
    growing = Index.build(sorted(folder.iterdir())[:3], emb, hnsw_threshold=5, kind="hnsw")
    assert growing.index_type == "flat"
    growing.add(sorted(folder.iterdir())[3:])  # crosses the threshold: the vectors move to HNSW
    assert growing.index_type == "hnsw" and growing.faiss_index.ntotal == 5
    assert growing.search(folder / "img0.png", top_k=1)[0]["path"].endswith("img0.png")
    growing.save(tmp_path / "g")
    assert json.loads((tmp_path / "g" / "manifest.json").read_text())["index_type"] == "hnsw"
    with pytest.raises(ConfigError, match="hnsw_threshold"):
        Index(emb, hnsw_threshold=0)


def test_phash_near_duplicates(tmp_path):
    folder = _collection(tmp_path, 6)
    _near_copy(folder / "img2.png", folder / "img2_copy.jpg")
    Index.build(folder, "phash", out=tmp_path / "idx")
    index = Index.load(tmp_path / "idx")
    assert index.index_type == "binary_flat" and index.model["dim"] == 64
    rows = index.search(folder / "img2.png", top_k=3)
    assert rows[0]["path"].endswith("img2.png") and rows[0]["distance"] == 0
    assert rows[1]["path"].endswith("img2_copy.jpg") and rows[1]["distance"] <= 8 < rows[2]["distance"]
    with pytest.raises(ConfigError, match="top_k"):
        index.search(folder / "img2.png", top_k=0)
