"""CLI: pixlearn train segment, predict on a segmentation run, eval of a run and of classical segmenters."""

from __future__ import annotations

import json

import numpy as np

from pixlearn.cli import main
from pixlearn.io import read_image, read_mask, write_image

from .conftest import TINY


def test_train_segment_cli_on_binary_masks(binary_data, tmp_path, capsys):
    """0/255 masks: a one-output (sigmoid) network, focal + Dice loss, the last epoch's weights kept."""
    from pixlearn.tasks.segment.predict import load_segmenter

    code = main(["train", "segment", "--data", str(binary_data), "--model", "unet", "--backbone", TINY["encoder"], "--set", TINY["set"][0], "--epochs", "1",
                 "--img-size", "32", "--batch", "4", "--loss", "focal+dice", "--keep", "last", "-o", str(tmp_path / "run"),
                 "--no-progress", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    metrics = json.loads(captured.out)
    assert metrics["task"] == "segment" and metrics["binary"] is True and metrics["keep"] == "last"
    assert metrics["foreground_iou"] is not None and set(metrics["per_class"]) == {"background", "foreground"}
    assert "run folder:" in captured.err and (tmp_path / "run" / "report.html").is_file()
    seg = load_segmenter(tmp_path / "run")
    assert seg.binary and seg.model.pixlearn_spec.num_classes == 1 and seg.model.pixlearn_spec.name == "unet"
    assert seg.mask_coding == "binary255"  # the run records the 0/255 coding; predict writes 0/255 masks back


def test_train_segment_cli_reports_bad_names(binary_data, tmp_path, capsys):
    code = main(["train", "segment", "--data", str(binary_data), "--model", "unte", "-o", str(tmp_path / "r")])
    assert code == 1 and "did you mean 'unet'" in capsys.readouterr().err
    for old, new in (("--arch", "--model"), ("--encoder", "--backbone")):  # the old spellings point at the new ones
        code = main(["train", "segment", "--data", str(binary_data), old, "unet", "-o", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2 and f"no such option {old}: it is now {new}" in err


def test_predict_writes_masks_and_overlays(trained_run, tmp_path, capsys, rng):
    img = write_image(tmp_path / "in" / "big.png", rng.integers(0, 255, (50, 90, 3), dtype=np.uint8))
    code = main(["predict", str(trained_run.run_dir), str(img), "-o", str(tmp_path / "out"), "--overlay", "--format", "json"])
    assert code == 0, capsys.readouterr().err
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["mask"].endswith("big.png") and read_mask(rows[0]["mask"]).shape == (50, 90)
    assert (tmp_path / "out" / "big_overlay.png").is_file()


def test_eval_run_and_classical_methods_on_the_same_images(trained_run, shapes_data, tmp_path, capsys):
    code = main(["eval", str(trained_run.run_dir), "--data", str(shapes_data), "--method", "otsu", "--method", "kmeans",
                 "--format", "json", "-o", str(tmp_path / "ev")])
    err = capsys.readouterr()
    assert code == 0, err.err
    res = json.loads(err.out)
    run_res, otsu, km = res[str(trained_run.run_dir)], res["otsu"], res["kmeans"]
    assert run_res["mean_iou"] == trained_run.metrics["mean_iou"]  # the run's own val images, as in metrics.json
    assert otsu["split"] == km["split"] == "val" and otsu["n"] == run_res["n"] == 2
    assert (tmp_path / "ev" / "report.html").is_file() and (tmp_path / "ev" / "metrics.json").is_file()


def test_eval_classical_method_alone(binary_data, capsys):
    code = main(["eval", "--method", "otsu", "--data", str(binary_data)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "otsu" in out.out and "mean_iou (val, n=2)" in out.out
    assert main(["eval", "--method", "otsu", "--method", "watershd", "--data", str(binary_data)]) == 1
    assert "did you mean 'watershed'" in capsys.readouterr().err
