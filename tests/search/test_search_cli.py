"""``pixlearn index build|add|info`` and ``pixlearn search`` end to end (phash and a classification run folder)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixlearn.cli import main

pytest.importorskip("faiss")


def _images(folder, seeds, size: int = 40):
    folder.mkdir(parents=True, exist_ok=True)
    for s in seeds:
        small = np.random.default_rng(s).integers(0, 256, (5, 5, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"img{s}.png")
    return folder


def _run_folder(tmp_path):
    """A classification run folder as pixlearn train classify writes it (model card + weights), random init."""
    import torch

    from pixlearn.models import create_model, save_weights
    from pixlearn.tasks.classify.predict import model_card

    torch.manual_seed(0)
    model = create_model("pixlearn_smallcnn_tiny", num_classes=2, img_size=32)
    weights = tmp_path / "run" / "weights"
    weights.mkdir(parents=True)
    (weights / "model.json").write_text(json.dumps(model_card(model, ["a", "b"])))
    save_weights(model, weights / "best.safetensors")
    return tmp_path / "run"


def test_index_build_add_info_search_phash(tmp_path, capsys):
    src = _images(tmp_path / "imgs", range(4))
    Image.open(src / "img1.png").resize((33, 33)).save(src / "img1_copy.jpg", quality=85)
    (src / "broken.png").write_bytes(b"garbage")
    idx = tmp_path / "idx"
    assert main(["index", "build", str(src), "--model", "phash", "-o", str(idx), "--no-progress", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["added"] == 5 and json.loads(out)["failed"] == 1 and "broken.png" in err
    assert main(["search", str(idx), str(src / "img1.png"), "--top-k", "2", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["path"].endswith("img1.png") and rows[0]["distance"] == 0
    assert rows[1]["path"].endswith("img1_copy.jpg")
    more = _images(tmp_path / "more", [7])
    assert main(["index", "add", str(idx), str(more), str(src / "img0.png"), "--no-progress", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["skipped"], report["images"]) == (1, 1, 6)
    assert main(["index", "info", str(idx), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["index_type"] == "binary_flat" and info["count"] == 6 and info["model"]["kind"] == "phash"
    assert main(["search", str(idx), str(src / "img1.png"), "--format", "csv", "-k", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "rank,path,distance"


def test_index_with_a_run_folder_and_bounds(tmp_path, capsys):
    src = _images(tmp_path / "imgs", range(3))
    run = _run_folder(tmp_path)
    idx = tmp_path / "idx"
    assert main(["index", "build", str(src), "--model", str(run), "-o", str(idx), "--no-progress"]) == 0
    capsys.readouterr()
    info = json.loads((idx / "manifest.json").read_text())
    assert info["model"]["kind"] == "run" and info["model"]["preprocessing"]["img_size"] == [32, 32]
    assert main(["search", str(idx), str(src / "img2.png"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and rows[0]["path"].endswith("img2.png") and rows[0]["score"] == pytest.approx(1.0, abs=1e-4)
    # bounds and checks before any work
    assert main(["search", str(idx), str(src / "img2.png"), "--top-k", "1001"]) == 2
    assert main(["search", str(idx), str(tmp_path / "nope.png")]) == 1
    assert main(["search", str(tmp_path), str(src / "img2.png")]) == 1
    assert main(["index", "build", str(src), "--model", "phash", "-o", str(idx), "--no-progress"]) == 1  # exists
    assert "--force" in capsys.readouterr().err
    assert main(["index", "build", str(tmp_path / "missing"), "--model", "phash", "-o", str(tmp_path / "i2")]) == 1
    assert main(["index", "build", str(src), "--model", "phash", "-o", "/no-such-root-folder/idx"]) == 1
    assert not (tmp_path / "i2").exists()


def test_search_refuses_an_index_whose_run_weights_changed(tmp_path, capsys):
    """The manifest records the run's weights sha256: new weights in the run folder are another model."""
    import torch

    from pixlearn.models import create_model, save_weights

    src = _images(tmp_path / "imgs", range(2))
    run = _run_folder(tmp_path)
    idx = tmp_path / "idx"
    assert main(["index", "build", str(src), "--model", str(run), "-o", str(idx), "--no-progress"]) == 0
    torch.manual_seed(1)
    save_weights(create_model("pixlearn_smallcnn_tiny", num_classes=2, img_size=32), run / "weights" / "best.safetensors")
    capsys.readouterr()
    assert main(["search", str(idx), str(src / "img0.png")]) == 1
    assert "weights_sha256" in capsys.readouterr().err


def test_import_search_stays_light():
    import subprocess
    import sys

    code = ("import sys, pixlearn.search, pixlearn.search.index; "
            "print(sorted(m for m in ('faiss', 'torch', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
