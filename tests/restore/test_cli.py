"""CLI smoke: pixlearn train restore, predict RUN IMG -o out.png, eval on a run and on a classical method."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pixlearn.cli import main
from pixlearn.io import read_image, write_image


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_predict_eval_from_the_command_line(grey_folder: Path, tmp_path: Path, capsys, gray_photo: np.ndarray) -> None:
    code, out, err = run(["train", "restore", "--task", "denoise", "--data", grey_folder, "--model", "dncnn", "--sigma", "25",
                          "--depth", "3", "--width", "4", "--img-size", "16", "--patches-per-image", "2", "--epochs", "1",
                          "--batch", "8", "--set", "val_crop=32", "--set", "eval_methods=[nl_means]",
                          "--out", tmp_path / "run", "--no-progress", "--format", "json"], capsys)
    assert code == 0, err
    metrics = json.loads(out)
    assert set(metrics["methods"]) == {"model", "input", "nl_means"} and metrics["split"] == "val"
    assert "run folder:" in err

    write_image(tmp_path / "odd.png", gray_photo[:33, :47])
    code, out, err = run(["predict", tmp_path / "run", tmp_path / "odd.png", "-o", tmp_path / "clean.png", "--format", "json"], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["out_width"] == 47
    assert read_image(tmp_path / "clean.png", mode="unchanged").shape == (33, 47)
    code, _, err = run(["predict", tmp_path / "run", tmp_path / "odd.png"], capsys)
    assert code == 2 and "-o out.png" in err

    code, out, err = run(["eval", tmp_path / "run", "--data", grey_folder, "--format", "json"], capsys)
    assert code == 0, err
    again = json.loads(out)
    assert again["split"] == "holdout" and {"model", "input"} <= set(again["methods"])

    code, out, err = run(["eval", "--method", "nl_means", "--method", "bilateral", "--data", grey_folder, "--sigma", "15",
                          "--format", "json", "--out", tmp_path / "ev"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 8 and res["degradation"] == "gaussian:sigma=15.0"
    assert res["methods"]["nl_means"]["psnr"] > res["methods"]["input"]["psnr"]
    assert (tmp_path / "ev" / "metrics.json").is_file() and (tmp_path / "ev" / "crops.png").is_file()
    code, _, err = run(["eval", "--method", "nl_means", "--data", grey_folder], capsys)
    assert code != 0 and "--sigma" in err
