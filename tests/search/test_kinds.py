"""Index kinds (flat, HNSW, IVF, auto), add and remove per kind, the manifest's record of them, bad options.

A pixel embedder (8x8x3 means, centred, L2-normalised: 192-d) stands in for a CNN so that the tests stay fast;
the thresholds are tiny so that every kind is reached with a few dozen images.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixlearn._core.errors import ConfigError
from pixlearn.cli import main
from pixlearn.search.embed import Embedder, PHashEmbedder
from pixlearn.search.index import AUTO_LARGE_KIND, IVF_RETRAIN_FACTOR, Index, ivf_nlist, remove

faiss = pytest.importorskip("faiss")


class PixelEmbedder(Embedder):
    """8x8 area means of the RGB image, centred and L2-normalised (192-d float32)."""

    kind = "pixels"
    name = "pixels8"
    dim = 192

    def describe(self):
        return {"kind": "pixels", "name": "pixels8", "weights_sha256": None, "dim": 192, "metric": "cosine",
                "preprocessing": {"resize": "8x8 box"}}

    def embed(self, images):
        out = np.zeros((len(images), self.dim), np.float32)
        for i, img in enumerate(images):
            v = np.asarray(Image.fromarray(img).resize((8, 8), Image.BOX), np.float32).reshape(-1)
            v -= v.mean()
            out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
        return out


def _images(folder, seeds):
    folder.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        small = np.random.default_rng(s).integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((16, 16), Image.NEAREST).save(folder / f"img{s:03d}.png")
    return sorted(folder.glob("*.png"))


def _top1(index, path, **kw):
    return index.search(str(path), top_k=1, **kw)[0]["path"]


@pytest.mark.parametrize("kind, expected", [("flat", "flat"), ("hnsw", "hnsw"), ("ivf", "ivf"),
                                            ("auto", AUTO_LARGE_KIND)])
def test_kind_reached_at_the_threshold_finds_every_image(tmp_path, kind, expected):
    paths = _images(tmp_path / "imgs", range(80))
    below = Index.build(paths[:39], PixelEmbedder(), kind=kind, threshold=40)
    assert below.index_type == "flat"
    index = Index.build(paths, PixelEmbedder(), kind=kind, threshold=40, nprobe=64)
    assert index.index_type == expected and len(index) == index.faiss_index.ntotal == 80
    for p in paths[::9]:
        assert _top1(index, p) == str(p.resolve())
    if expected == "ivf":
        assert index.faiss_index.nlist == ivf_nlist(80) == 2 and index.ivf_trained_on == 80


def test_add_per_kind_crosses_the_threshold_and_survives_a_round_trip(tmp_path):
    paths = _images(tmp_path / "imgs", range(90))
    for kind in ("flat", "hnsw", "ivf"):
        index = Index.build(paths[:30], PixelEmbedder(), kind=kind, threshold=40)
        assert index.index_type == "flat"
        index.add(paths[30:60])  # 60 >= 40: becomes the kind, the first 30 vectors move over
        assert index.index_type == kind and index.faiss_index.ntotal == 60
        index.save(tmp_path / kind)
        again = Index.load(tmp_path / kind, embedder=PixelEmbedder())
        report = again.add(paths[60:] + paths[:2])
        assert len(report.added) == 30 and len(report.skipped) == 2 and len(again) == 90
        assert again.index_type == kind
        for p in (paths[0], paths[45], paths[89]):
            assert _top1(again, p, nprobe=64, ef_search=128) == str(p.resolve())


def test_ivf_is_trained_at_the_threshold_then_retrained_when_it_grows(tmp_path):
    paths = _images(tmp_path / "imgs", range(100))
    index = Index.build(paths[:20], PixelEmbedder(), kind="ivf", threshold=20)
    assert index.index_type == "ivf" and index.ivf_trained_on == 20
    index.add(paths[20:79])  # 79 < 4 x 20: added to the trained index
    assert index.ivf_trained_on == 20 and index.faiss_index.ntotal == 79
    index.add(paths[79:])  # reaches 4 x 20: retrained on all 100
    assert index.ivf_trained_on == 100 == IVF_RETRAIN_FACTOR * 25
    assert index.faiss_index.nlist == ivf_nlist(100)
    assert np.allclose(index.vectors(), PixelEmbedder().embed([np.asarray(Image.open(p).convert("RGB")) for p in paths]),
                       atol=1e-6)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_remove_per_kind_keeps_entries_and_vectors_aligned(tmp_path, kind):
    paths = _images(tmp_path / "imgs", range(60))
    out = tmp_path / "idx"
    Index.build(paths, PixelEmbedder(), kind=kind, threshold=30, out=out)
    gone = [paths[0], paths[17], paths[59]]
    assert remove(out, [str(p) for p in gone] + [str(tmp_path / "never-indexed.png")]) == 3
    index = Index.load(out, embedder=PixelEmbedder())
    assert index.index_type == kind and len(index) == index.faiss_index.ntotal == 57
    held = [e["path"] for e in index.entries]
    assert not {str(p.resolve()) for p in gone} & set(held)
    kept = [p for p in paths if p not in gone]
    expected = PixelEmbedder().embed([np.asarray(Image.open(p).convert("RGB")) for p in kept])
    assert np.allclose(index.vectors(), expected, atol=1e-6)  # vector i is still entries[i]
    for p in (kept[0], kept[16], kept[-1]):
        assert _top1(index, p, nprobe=64) == str(p.resolve())
    assert index.add([gone[1]]).added == [str(gone[1])]  # its fingerprint was forgotten too
    assert remove(out, [tmp_path / "imgs"], out=tmp_path / "next") == 57  # a folder: everything under it
    assert Index.read(tmp_path / "next").faiss_index.ntotal == 0 and len(Index.read(out)) == 57


def test_remove_phash_and_nothing_matched(tmp_path):
    paths = _images(tmp_path / "imgs", range(5))
    index = Index.build(paths, PHashEmbedder())
    assert index.remove([paths[2]]) == 1 and index.faiss_index.ntotal == 4
    assert index.search(str(paths[3]), top_k=1)[0]["path"] == str(paths[3].resolve())
    assert index.remove([tmp_path / "other.png"]) == 0 and len(index) == 4
    index.save(tmp_path / "idx")
    before = (tmp_path / "idx" / "manifest.json").stat().st_mtime_ns
    assert remove(tmp_path / "idx", [tmp_path / "other.png"]) == 0
    assert (tmp_path / "idx" / "manifest.json").stat().st_mtime_ns == before  # nothing saved


def test_manifest_records_kind_and_parameters(tmp_path):
    paths = _images(tmp_path / "imgs", range(50))
    Index.build(paths, PixelEmbedder(), kind="ivf", threshold=40, nprobe=3, out=tmp_path / "ivf")
    m = json.loads((tmp_path / "ivf" / "manifest.json").read_text())
    assert (m["kind"], m["index_type"], m["large_kind"], m["threshold"], m["hnsw_threshold"]) == ("ivf", "ivf", "ivf", 40, 40)
    assert m["params"] == {"nlist": ivf_nlist(50), "nprobe": 3, "trained_on": 50, "retrain_at": 200,
                           "quantizer": "IndexFlatIP", "metric": "inner_product"}
    assert m["search_defaults"] == {"nprobe": 3, "ef_search": 64} and m["count"] == 50
    Index.build(paths, PixelEmbedder(), kind="hnsw", threshold=10, ef_search=100, out=tmp_path / "hnsw")
    m = json.loads((tmp_path / "hnsw" / "manifest.json").read_text())
    assert m["params"] == {"M": 32, "efConstruction": 80, "efSearch": 100, "metric": "inner_product"}
    Index.build(paths, PixelEmbedder(), kind="auto", out=tmp_path / "auto")
    m = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert (m["kind"], m["index_type"], m["large_kind"], m["threshold"]) == ("auto", "flat", AUTO_LARGE_KIND, 50_000)
    reread = Index.read(tmp_path / "ivf")
    assert (reread.kind, reread.nprobe, reread.ivf_trained_on, reread.embedder) == ("ivf", 3, 50, None)
    with pytest.raises(ConfigError, match="Index.load"):
        reread.add(paths[:1])
    assert reread.search(str(paths[4]), embedder=PixelEmbedder(), top_k=1)[0]["path"] == str(paths[4].resolve())


def test_old_manifest_without_kind_still_switches_to_hnsw(tmp_path):
    paths = _images(tmp_path / "imgs", range(12))
    Index.build(paths[:6], PixelEmbedder(), threshold=10, out=tmp_path / "idx")
    path = tmp_path / "idx" / "manifest.json"
    m = json.loads(path.read_text())
    for key in ("kind", "large_kind", "threshold", "params", "search_defaults"):
        m.pop(key)
    path.write_text(json.dumps(m))
    index = Index.load(tmp_path / "idx", embedder=PixelEmbedder())
    index.add(paths[6:])
    assert index.kind == "hnsw" and index.index_type == "hnsw"


def test_bad_options_are_refused_before_any_work(tmp_path):
    emb = PixelEmbedder()
    for kwargs, match in [({"kind": "annoy"}, "kind must be one of"), ({"threshold": 0}, "threshold"),
                          ({"threshold": 10**10}, "threshold"), ({"nprobe": 0}, "nprobe"),
                          ({"nprobe": 70000}, "nprobe"), ({"ef_search": 5000}, "ef_search"),
                          ({"nprobe": True}, "nprobe")]:
        with pytest.raises(ConfigError, match=match):
            Index(emb, **kwargs)
    with pytest.raises(ConfigError, match="phash index is always an exact binary flat"):
        Index(PHashEmbedder(), kind="ivf")
    paths = _images(tmp_path / "imgs", range(3))
    index = Index.build(paths, emb)
    with pytest.raises(ConfigError, match="nprobe"):
        index.search(str(paths[0]), nprobe=0)
    with pytest.raises(ConfigError, match="ef_search"):
        index.search(str(paths[0]), ef_search=4097)
    with pytest.raises(ConfigError, match=r"shape \(N, 192\)"):
        index.search_vectors(np.zeros((1, 10), np.float32))


def test_cli_kind_remove_and_search_options(tmp_path, capsys, monkeypatch):
    """The CLI with phash (no model to load): --kind, --threshold bounds, index remove, search --nprobe."""
    src = tmp_path / "imgs"
    paths = _images(src, range(6))
    idx = tmp_path / "idx"
    assert main(["index", "build", str(src), "--model", "phash", "-o", str(idx), "--kind", "ivf", "--no-progress"]) == 1
    assert "phash index is always an exact binary flat" in capsys.readouterr().err
    assert main(["index", "build", str(src), "--model", "phash", "-o", str(idx), "--kind", "annoy"]) == 2
    assert main(["index", "build", str(src), "--model", "phash", "-o", str(idx), "--threshold", "0"]) == 2
    assert main(["index", "build", str(src), "--model", "phash", "-o", str(idx), "--nprobe", "70000"]) == 2
    assert not idx.exists()
    assert main(["index", "build", str(src), "--model", "phash", "-o", str(idx), "--kind", "flat",
                 "--hnsw-threshold", "3", "--no-progress", "--format", "json"]) == 0
    capsys.readouterr()
    info = json.loads((idx / "manifest.json").read_text())
    assert (info["kind"], info["index_type"], info["threshold"]) == ("flat", "binary_flat", 3)
    assert main(["index", "remove", str(idx), str(paths[1]), str(tmp_path / "nope.png"), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    row = json.loads(out)
    assert (row["removed"], row["images"], row["before"]) == (1, 5, 6) and "not in the index" in err and "nope.png" in err
    assert main(["search", str(idx), str(paths[2]), "-k", "1", "--nprobe", "4", "--ef-search", "8", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["path"] == str(paths[2].resolve())
    assert main(["search", str(idx), str(paths[2]), "--nprobe", "0"]) == 2
    assert main(["index", "remove", str(tmp_path), str(paths[0])]) == 1  # not an index folder
