"""Classic classifiers: train on a labelled folder, the run folder, held-out scores, reload and predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn.io import write_image

CLASSES = ("checker", "horizontal", "vertical")
RUN_FILES = (
    "config.yaml",
    "manifest.json",
    "metrics.json",
    "model.skops",
    "plots/confusion_matrix.png",
    "plots/confusion_matrix_normalized.png",
    "plots/roc.png",
    "report.html",
)


def _pattern(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Stripes or a checkerboard with random period, phase, contrast and noise: separable by HOG."""
    period = int(rng.integers(6, 11))
    phase = int(rng.integers(0, period))
    r, c = np.mgrid[:size, :size]
    if kind == "horizontal":
        on = ((r + phase) // (period // 2)) % 2
    elif kind == "vertical":
        on = ((c + phase) // (period // 2)) % 2
    else:
        on = (((r + phase) // (period // 2)) + ((c + phase) // (period // 2))) % 2
    lo, hi = int(rng.integers(0, 80)), int(rng.integers(170, 256))
    img = np.where(on, hi, lo).astype(np.float64) + rng.normal(0, 12, (size, size))
    tint = rng.uniform(0.7, 1.0, 3)
    return np.clip(img[..., None] * tint, 0, 255).astype(np.uint8)


def make_folder(root: Path, *, per_class: int = 20, splits: tuple[str, ...] = (), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split in splits or (None,):
        n = per_class if split in (None, "train") else max(4, per_class // 2)
        for cls in CLASSES:
            folder = root / split / cls if split else root / cls
            for i in range(n):
                write_image(folder / f"{cls}_{i:03d}.png", _pattern(cls, rng))
    return root


@pytest.fixture(scope="module")
def flat_folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("flat"), per_class=20)


@pytest.fixture(scope="module")
def svm_run(flat_folder, tmp_path_factory):
    from pixlearn.classic import train_classic

    return train_classic(flat_folder, features="hog", model="svm", img_size=32, folds=3, seed=0,
                         out=tmp_path_factory.mktemp("runs") / "svm", progress=False)


def _check_run_folder(run: Path, *, split: str, n_classes: int = 3) -> dict:
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "classify" and metrics["split"] == split
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "roc_auc_macro", "n",
                "per_class", "confusion_matrix", "classes", "cv", "fit_seconds"):
        assert key in metrics, key
    assert metrics["classes"] == list(CLASSES)
    assert set(metrics["per_class"]) == set(CLASSES)
    assert set(metrics["per_class"]["checker"]) == {"precision", "recall", "f1", "support"}
    cm = np.array(metrics["confusion_matrix"])
    assert cm.shape == (n_classes, n_classes) and cm.sum() == metrics["n"]
    assert set(metrics["cv"]) == {"folds", "accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std"}
    manifest = json.loads((run / "manifest.json").read_text())
    for key in ("pixlearn", "python", "packages", "seed", "data", "wall_seconds", "skipped", "timings"):
        assert key in manifest, key
    assert manifest["packages"]["scikit-learn"] != "not installed"
    assert len(manifest["data"]["fingerprint"]) == 64
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["classes"] == list(CLASSES) and cfg["eval_split"] == split
    for png in (run / "plots").glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    html = (run / "report.html").read_text()
    assert f"<b>{split}</b> split" in html and "data:image/png;base64," in html
    assert all(c in html for c in CLASSES)
    return metrics


def test_svm_run_folder_and_held_out_score(svm_run):
    metrics = _check_run_folder(svm_run.run_dir, split="holdout")
    # 20% of 60 images, stratified: 4 per class, none of them used for fitting
    assert metrics["n"] == 12
    assert [metrics["per_class"][c]["support"] for c in CLASSES] == [4, 4, 4]
    assert metrics["accuracy"] >= 0.75  # chance is 1/3
    assert metrics["cv"]["folds"] == 3 and metrics["cv"]["accuracy_mean"] >= 0.75
    assert svm_run.manifest["data"]["images_used"] == {"train": 48, "holdout": 12}
    assert svm_run.metrics == metrics


def test_held_out_images_are_not_training_images(svm_run, flat_folder):
    # the hold-out is exact and seeded: the same seed gives the same split, so the score is reproducible
    from pixlearn.classic import train_classic

    again = train_classic(flat_folder, features="hog", model="svm", img_size=32, folds=0, seed=0,
                          out=svm_run.run_dir.parent / "again", progress=False)
    assert again.metrics["confusion_matrix"] == svm_run.metrics["confusion_matrix"]
    assert again.metrics["cv"]["folds"] == 0 and again.metrics["cv"]["accuracy_mean"] is None


def test_load_and_predict_roundtrip(svm_run, flat_folder):
    from pixlearn.classic import load_classic, predict_classic

    model = load_classic(svm_run.run_dir)
    assert model.classes == list(CLASSES) and model.features == "hog" and model.img_size == 32
    rows = predict_classic(svm_run.run_dir, [str(flat_folder)])
    assert len(rows) == 60 and all(r["error"] is None for r in rows)
    direct = predict_classic(svm_run.model, [str(flat_folder)])
    assert [(r["label"], round(r["score"], 9)) for r in rows] == [(r["label"], round(r["score"], 9)) for r in direct]
    truth = [Path(r["path"]).parent.name for r in rows]
    assert np.mean([r["label"] == t for r, t in zip(rows, truth)]) >= 0.85
    from pixlearn.io import read_image

    img = read_image(rows[0]["path"])
    (label, score), = model.predict([img])
    assert label == rows[0]["label"] and score == pytest.approx(rows[0]["score"])


def test_predict_reports_unreadable_files(svm_run, tmp_path):
    from pixlearn.classic import predict_classic

    good = tmp_path / "good.png"
    write_image(good, _pattern("vertical", np.random.default_rng(5)))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    rows = predict_classic(svm_run.run_dir, [str(good), str(bad), str(tmp_path / "missing.png")])
    assert [r["error"] is None for r in rows] == [True, False, False]
    assert rows[0]["label"] in CLASSES
    assert rows[1]["label"] is None and "ImageDecodeError" in rows[1]["error"]
    assert "ImageNotFoundError" in rows[2]["error"]


def test_random_forest_with_splits_and_a_corrupt_image(tmp_path):
    from pixlearn.classic import train_classic

    data = make_folder(tmp_path / "data", per_class=16, splits=("train", "val"), seed=1)
    (data / "train" / "vertical" / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (data / "train" / "horizontal" / "notes.txt").write_text("not an image")  # ignored by extension
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        result = train_classic(data, features="hog+color", model="rf", img_size=32, folds=4, seed=0,
                               out=tmp_path / "rf", workers=2, progress=False)
    metrics = _check_run_folder(result.run_dir, split="val")
    assert metrics["n"] == 24  # the whole val split, 8 per class
    assert metrics["accuracy"] >= 0.75
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["data"]["skipped"] == 1
    assert manifest["skipped"][0]["path"] == "train/vertical/zz_corrupt.png"
    assert "ImageDecodeError" in manifest["skipped"][0]["error"]
    assert manifest["data"]["images_used"] == {"train": 48, "val": 24}
    assert manifest["data"]["images_found"] == {"train": 49, "val": 24}
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["model"] == "random_forest"


def test_cli_train_classic(flat_folder, tmp_path, capsys):
    from pixlearn.cli import main

    out = tmp_path / "cli-run"
    code = main(["train", "classic", "--data", str(flat_folder), "--features", "hog", "--model", "knn",
                 "--img-size", "32", "--folds", "3", "--out", str(out), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = json.loads(captured.out)
    assert metrics["split"] == "holdout" and metrics["accuracy"] >= 0.75
    assert str(out) in captured.err
    _check_run_folder(out, split="holdout")

    code = main(["train", "classic", "--data", str(flat_folder), "--model", "svm", "--img-size", "32",
                 "--folds", "0", "--out", str(tmp_path / "cli-table")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "accuracy" in captured.out and "holdout" in captured.out


def test_cli_unknown_model_suggests(flat_folder, capsys):
    from pixlearn.cli import main

    code = main(["train", "classic", "--data", str(flat_folder), "--model", "svn"])
    err = capsys.readouterr().err
    assert code == 1 and "did you mean 'svm'" in err


def test_unknown_names_suggest_the_closest(flat_folder):
    from pixlearn.classic import build_model, train_classic

    with pytest.raises(UnknownNameError, match="did you mean 'svm'"):
        train_classic(flat_folder, model="svn")
    with pytest.raises(UnknownNameError, match="did you mean 'hog'"):
        train_classic(flat_folder, features="hgo")
    with pytest.raises(UnknownNameError, match="'random_forest'"):
        build_model("random_forrest")


def test_too_few_images_for_the_folds_is_a_clear_error(tmp_path):
    from pixlearn.classic import train_classic

    data = make_folder(tmp_path / "tiny", per_class=5)
    with pytest.raises(ConfigError, match=r"folds=5 but class .* has only 4 training image"):
        train_classic(data, img_size=32, folds=5, out=tmp_path / "r", progress=False)


def test_empty_folder_shows_the_expected_layout(tmp_path):
    from pixlearn.classic import train_classic

    with pytest.raises(ConfigError, match="expected one folder per class"):
        train_classic(tmp_path)


def test_load_refuses_untrusted_types(svm_run, tmp_path):
    import shutil

    import skops.io as sio

    from pixlearn.classic import load_classic

    run = tmp_path / "tampered"
    shutil.copytree(svm_run.run_dir, run)

    class Sneaky:  # a type outside scikit-learn: must never be instantiated on load
        pass

    sio.dump({"estimator": Sneaky()}, run / "model.skops")
    with pytest.raises(ConfigError, match="refusing to load"):
        load_classic(run)
    (run / "model.skops").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="skops"):
        load_classic(run)
