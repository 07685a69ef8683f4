"""One rule for -o/--out: missing folders are created only inside the current folder.

``pixlearn op ... -o /missing/dir/x.png`` used to create /missing/dir silently. Now every command
with an output path stops before any work with an error naming the first missing folder, unless
that folder lies inside the current folder (or is the output folder itself).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pixlearn.cli import main
from pixlearn.io import write_image


@pytest.fixture
def setup(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    img = write_image(work / "in.png", np.full((8, 8, 3), 128, np.uint8))
    elsewhere = tmp_path / "elsewhere"  # outside the current folder, and missing
    return work, img, elsewhere


def _commands(img: Path, out_file: Path, out_dir: Path) -> dict[str, list[str]]:
    data = str(img.parent)
    return {
        "op": ["op", "gaussian", str(img), "-o", str(out_file)],
        "predict": ["predict", "no-such-run", str(img), "-o", str(out_file)],
        "predict-folder": ["predict", "no-such-run", str(img), "-o", str(out_dir)],
        "process": ["process", "edges", str(img), "--out", str(out_dir)],
        "demo": ["demo", "--out", str(out_dir)],
        "data check": ["data", "check", data, "-o", str(out_file.with_suffix(".json"))],
        "data split": ["data", "split", data, "--out", str(out_file.with_suffix(".csv"))],
        "data preview": ["data", "preview", data, "-o", str(out_file)],
        "data convert": ["data", "convert", data, "--to", "yolo", str(out_dir)],
        "eval": ["eval", "no-such-run", "--data", data, "-o", str(out_dir)],
        "train classic": ["train", "classic", "--data", data, "-o", str(out_dir)],
        "train classify": ["train", "classify", "--data", data, "-o", str(out_dir)],
    }


@pytest.mark.parametrize("name", list(_commands(Path("i.png"), Path("o.png"), Path("d"))))
def test_missing_folders_outside_the_current_folder_are_an_error(setup, capsys, name):
    work, img, elsewhere = setup
    argv = _commands(img, elsewhere / "dir" / "x.png", elsewhere / "dir" / "run")[name]
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert f"the folder {elsewhere} does not exist" in err and "mkdir -p" in err
    assert not elsewhere.exists()  # nothing was created


def test_folders_inside_the_current_folder_are_created(setup, capsys):
    work, img, _ = setup
    assert main(["op", "gaussian", str(img), "-o", "sub/dir/x.png"]) == 0
    assert (work / "sub" / "dir" / "x.png").is_file()


def test_the_output_folder_itself_may_be_new(setup, capsys, tmp_path):
    """-o /existing/new-folder: the command creates the folder it was asked to write."""
    _, img, _ = setup
    (tmp_path / "there").mkdir()
    assert main(["process", "edges", str(img), "--out", str(tmp_path / "there" / "new")]) == 0, capsys.readouterr().err
    assert (tmp_path / "there" / "new" / "in.png").is_file()


def test_an_existing_folder_given_as_a_file_is_an_error(setup, capsys):
    work, img, _ = setup
    (work / "d").mkdir()
    assert main(["op", "gaussian", str(img), "-o", "d"]) != 0
    assert "is a folder" in capsys.readouterr().err
