"""A classifier that cannot learn, on a skewed set: the training summary, metrics.json, manifest.json and report.html
say that it does not beat the majority class of the held-out split, and ``pixlearn predict`` warns once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixlearn.cli import main
from pixlearn.io import write_image


def _noise_dataset(root: Path) -> Path:
    """Noise images whose class says nothing about the pixels; 90 % of the test split is class 'a'."""
    rng = np.random.default_rng(0)
    counts = {"train": {"a": 24, "b": 4, "c": 4}, "test": {"a": 18, "b": 1, "c": 1}}
    for split, per_class in counts.items():
        for cls, n in per_class.items():
            for i in range(n):
                write_image(root / split / cls / f"{cls}{i:02d}.png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def useless_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    import torch

    root = tmp_path_factory.mktemp("skewed")
    data = _noise_dataset(root / "data")
    run = root / "run"
    import contextlib
    import io

    err = io.StringIO()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["train", "classify", "--data", str(data), "--model", "pixlearn_smallcnn_tiny", "--epochs", "1",
                         "--img-size", "8", "--batch", "8", "--lr", "1e-7", "--out", str(run), "--no-progress"])
    finally:
        torch.set_num_threads(before)
    assert code == 0, err.getvalue()
    return run, data, err.getvalue()


def test_metrics_and_manifest_say_it_does_not_beat_the_majority_class(useless_run):
    run, _, _ = useless_run
    metrics = json.loads((run / "metrics.json").read_text())
    v = metrics["verdict"]
    assert metrics["split"] == "test" and v["split"] == "test" and v["n"] == 20
    assert v["beats"] is False and v["outcome"] in ("worse", "tie")
    names = {b["name"]: b["value"] for b in v["baselines"]}
    assert names["the majority class 'a'"] == pytest.approx(0.9)  # 18 of the 20 test images
    assert names["chance"] == pytest.approx(1 / 3)
    assert v["model_value"] == pytest.approx(metrics["accuracy"])
    assert v["sentence"].startswith("Warning: on the test split (n=20), accuracy ")
    assert "the majority class 'a' (0.900)" in v["sentence"]
    assert json.loads((run / "manifest.json").read_text())["verdict"] == v


def test_the_cli_summary_and_the_report_print_the_warning(useless_run):
    run, _, err = useless_run
    sentence = json.loads((run / "metrics.json").read_text())["verdict"]["sentence"]
    assert sentence in err
    page = (run / "report.html").read_text()
    assert "class='verdict warning'" in page and "the majority class &#x27;a&#x27; (0.900)" in page


def test_predict_warns_once_naming_the_run_metric_and_values(useless_run, capsys):
    run, data, _ = useless_run
    metrics = json.loads((run / "metrics.json").read_text())
    code = main(["predict", str(run), str(data / "test" / "a"), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert len(json.loads(out)) == 18  # the predictions still come, on stdout
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    line = warnings[0]
    assert f"run {run}" in line and "accuracy" in line
    assert f"accuracy {metrics['accuracy']:.3f}" in line and "(0.900)" in line and "test split" in line


def test_a_model_that_learned_gets_no_warning(tmp_path, capsys):
    """Colour classes a small CNN learns: the verdict says by how much it beats both baselines, and predict stays quiet."""
    import torch

    from pixlearn.tasks.classify.train import train_classifier

    rng = np.random.default_rng(0)
    data = tmp_path / "colours"
    for split, n in (("train", 24), ("test", 8)):
        for channel, cls in enumerate(("red", "green", "blue")):
            for i in range(n):  # each class is one bright channel: a small CNN learns it in a few epochs
                img = rng.integers(0, 70, (12, 12, 3), dtype=np.uint8)
                img[..., channel] += np.uint8(150)
                write_image(data / split / cls / f"{cls}{i:03d}.png", img)
    torch.set_num_threads(1)
    res = train_classifier(data, model="pixlearn_smallcnn_tiny", epochs=6, img_size=12, batch=8, lr=0.01, out=tmp_path / "run",
                           progress=False)
    v = res.metrics["verdict"]
    assert res.metrics["accuracy"] > 0.9, res.metrics["accuracy"]
    assert v["beats"] is True and v["sentence"].startswith("On the test split (n=24), accuracy ")
    assert "beats the majority class" in v["sentence"] and "by +" in v["sentence"]
    code = main(["predict", str(tmp_path / "run"), str(data / "test" / "red"), "--format", "json"])
    assert code == 0 and "warning" not in capsys.readouterr().err


def test_the_service_model_listing_carries_the_verdict(useless_run, tmp_path):
    from pixlearn.serve.db import make_engine, metadata
    from pixlearn.serve.registry import ModelRegistry

    run, _, _ = useless_run
    engine = make_engine("sqlite://")
    metadata.create_all(engine)
    registry = ModelRegistry(engine, tmp_path)
    registry.register_run(run, name="useless")
    [record] = registry.list()
    verdict = record["metrics"]["verdict"]
    assert verdict == json.loads((run / "metrics.json").read_text())["verdict"] and verdict["beats"] is False
    assert str(tmp_path) not in json.dumps(registry.public(record))


def test_eval_of_the_run_says_the_same_on_the_split_it_scores(useless_run, tmp_path, capsys):
    run, data, _ = useless_run
    code = main(["eval", str(run), "--data", str(data), "--format", "json", "--out", str(tmp_path / "ev")])
    out, err = capsys.readouterr()
    assert code == 0, err
    v = json.loads(out)["verdict"]
    assert v["split"] == "test" and v["beats"] is False and v["sentence"] in err
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["verdict"] == v
    assert "class='verdict warning'" in (tmp_path / "ev" / "report.html").read_text()
