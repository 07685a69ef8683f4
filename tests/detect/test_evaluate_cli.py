"""``pixlearn eval RUN --data DIR`` of a detection run: COCO's scores per split, box and mask columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixlearn.cli import main

from .test_evaluate import _write_coco, blob_runs  # noqa: F401  (blob_runs is a fixture)


def _run(root: Path) -> Path:
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "model.json").write_text(json.dumps({"task": "detect", "spec": {}, "class_names": ["cat", "dog"]}))
    return root


def test_eval_of_a_detection_run_prints_coco_scores_with_the_split(tmp_path: Path, blob_runs, capsys) -> None:  # noqa: F811
    data = _write_coco(tmp_path / "coco")
    run = _run(tmp_path / "run")
    code = main(["eval", str(run), "--data", str(data), "-o", str(tmp_path / "eval"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert blob_runs == [run]
    lines = captured.out.splitlines()
    assert "box val (n=2, 1 objects)" in lines[0] and "mask val (n=2, 1 objects)" in lines[0]
    for label in ("AP", "AP50", "AP75", "AP small", "AP medium", "AP large", "AR@100"):
        assert any(line.split()[:len(label.split())] == label.split() for line in lines[1:]), label
    assert "scored on:" in captured.err and "its val split" in captured.err and "COCO's -1" in captured.err
    assert (tmp_path / "eval" / "report.html").is_file() and (tmp_path / "eval" / "metrics.json").is_file()

    code = main(["eval", str(run), "--data", str(data), "--split", "train", "--format", "json", "--no-progress"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["split"] == "train" and res["objects"] == 5 and 0.0 < res["map50"] < 1.0


def test_eval_of_a_detection_run_names_a_missing_split(tmp_path: Path, blob_runs, capsys) -> None:  # noqa: F811
    data = _write_coco(tmp_path / "coco")
    code = main(["eval", str(_run(tmp_path / "run")), "--data", str(data), "--split", "test"])
    assert code == 1 and "has no 'test' split (splits present: train, val)" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["model.onnx"])
def test_a_detector_onnx_file_is_scored_as_a_detection_run(tmp_path: Path, blob_runs, capsys, name: str) -> None:  # noqa: F811
    data = _write_coco(tmp_path / "coco")
    (tmp_path / name).write_bytes(b"not read: load_detector is replaced here")
    code = main(["eval", str(tmp_path / name), "--data", str(data), "--format", "json", "--no-progress"])
    assert code == 0 and json.loads(capsys.readouterr().out)["task"] == "detect"
    assert blob_runs == [tmp_path / name]
