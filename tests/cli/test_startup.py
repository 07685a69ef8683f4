"""Start-up diet: ``pixlearn --help`` imports no torch, and ``pixlearn predict`` on a classification run
imports torch and the model but no Lightning, torchvision, timm, matplotlib, scikit-learn,
segmentation-models-pytorch or pycocotools (each costs from 0.3 to 2 s before the first image).

Each check runs in a fresh interpreter and inspects ``sys.modules``; nothing here is timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY_FOR_PREDICT = ("lightning", "pytorch_lightning", "torchvision", "timm", "matplotlib", "sklearn",
                     "segmentation_models_pytorch", "pycocotools", "torchmetrics", "pandas")


def _loaded_after(code: str, prefixes: tuple[str, ...]) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; return which of ``prefixes`` it imported, and its stdout/stderr."""
    probe = (
        "import sys, json\n"
        f"{code}\n"
        f"prefixes = {prefixes!r}\n"
        "mods = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in prefixes})\n"
        "print('MODULES=' + json.dumps(mods), file=sys.__stderr__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES=")), None)
    assert line is not None, f"probe failed (rc={proc.returncode}): {proc.stderr[-2000:]}"
    return {"modules": json.loads(line[len("MODULES="):]), "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory) -> tuple[Path, Path]:
    """A classification run folder as train classify writes it (model.json + best.safetensors), built without training."""
    from pixlearn.io import write_image
    from pixlearn.models import create_model, save_weights
    from pixlearn.tasks.classify.predict import model_card

    root = tmp_path_factory.mktemp("startup")
    run = root / "run"
    model = create_model("pixlearn_smallcnn_tiny", num_classes=2, img_size=8)
    save_weights(model, run / "weights" / "best.safetensors")
    (run / "weights" / "model.json").write_text(json.dumps(model_card(model, ["cat", "dog"])))
    img = write_image(root / "img.png", np.full((12, 10, 3), 100, np.uint8))
    return run, img


def test_predict_on_a_classification_run_imports_no_training_stack(classify_run):
    run, img = classify_run
    out = _loaded_after(
        "import pixlearn.cli\n"
        f"code = pixlearn.cli.main(['predict', {str(run)!r}, {str(img)!r}, '--format', 'json'])\n"
        "assert code == 0, code",
        HEAVY_FOR_PREDICT + ("torch",),
    )
    rows = json.loads(out["stdout"])
    assert rows[0]["label"] in ("cat", "dog") and rows[0]["error"] is None  # it really predicted
    assert out["modules"] == ["torch"], f"predict imported {out['modules']}"


def test_help_imports_no_torch():
    out = _loaded_after(
        "import pixlearn.cli\n"
        "try:\n    pixlearn.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "try:\n    pixlearn.cli.main(['predict', '--help'])\nexcept SystemExit:\n    pass",
        ("torch", "numpy", "cv2", "PIL") + HEAVY_FOR_PREDICT,
    )
    assert "predict" in out["stdout"]
    assert not {"torch", "torchvision", "lightning", "timm"} & set(out["modules"]), out["modules"]


def test_predict_help_names_every_task():
    from typer.testing import CliRunner

    from pixlearn.cli.app import app

    result = CliRunner().invoke(app, ["predict", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.replace("\u2502", " ").split())
    for task in ("classify", "classic", "segment", "restore"):
        assert f"{task} (train {task}" in text, task


def test_preprocessing_matches_the_training_loader():
    """The torchvision-free preprocessing of predict gives the tensors training's loader gives."""
    import torch

    from pixlearn._core.types import Task
    from pixlearn.data.index import DatasetIndex, Record
    from pixlearn.data.loader import ImageDataset, collate_skip_none
    from pixlearn.tasks.classify.predict import preprocess_images

    rng = np.random.default_rng(0)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for shape in [(8, 8, 3), (50, 33, 3), (300, 200, 3), (31, 17)]:
        for size in (8, 32, (40, 24)):
            img = rng.integers(0, 256, shape, dtype=np.uint8)
            index = DatasetIndex(Path("."), "files", Task.CLASSIFY, ["a"], [Record(Path("x.png"))])
            ds = ImageDataset(index, img_size=size, mean=mean, std=std, task=Task.CLASSIFY)
            from pixlearn._core.types import Sample

            rgb = img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2)
            expected = collate_skip_none([ds.prepare(Sample(image=rgb))], mean=mean, std=std).images
            got = preprocess_images([img], img_size=size, mean=mean, std=std)
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_inline_prediction_equals_the_loader_path(classify_run, tmp_path):
    """predict_files without workers (no DataLoader) gives the probabilities and errors of the loader path."""
    from pixlearn.io import write_image
    from pixlearn.tasks.classify.predict import load_classifier, predict_files

    run, img = classify_run
    rng = np.random.default_rng(1)
    paths = [str(write_image(tmp_path / f"{i}.png", rng.integers(0, 256, (9 + i, 14, 3), dtype=np.uint8))) for i in range(5)]
    (tmp_path / "bad.png").write_bytes(b"not an image")
    paths.insert(2, str(tmp_path / "bad.png"))
    clf = load_classifier(run)
    inline = predict_files(clf, paths, top_k=2, batch_size=2, workers=0)
    loader = predict_files(clf, paths, top_k=2, batch_size=2, workers=1)
    assert [r["error"] for r in inline] == [r["error"] for r in loader] and inline[2]["error"]
    for a, b in zip(inline, loader):
        assert a["label"] == b["label"]
        if a["score"] is not None:
            assert abs(a["score"] - b["score"]) < 1e-6


def test_root_help_imports_no_rich_and_no_command_module():
    """``pixlearn --help`` lists the commands from pixlearn.cli.app.COMMANDS: no command module, no rich/markdown."""
    probe = (
        "import sys, json\n"
        "import pixlearn.cli\n"
        "code = pixlearn.cli.main(['--help'])\n"
        "mods = sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'markdown_it', 'pygments', 'torch', 'numpy', 'yaml',"
        " 'pydantic') or m.startswith('pixlearn.cli.') and m.split('.')[2] not in ('app', '_group', '_clickmod'))\n"
        "print('MODULES=' + json.dumps(mods), file=sys.__stderr__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stderr.splitlines() if ln.startswith("MODULES=")), None)
    assert line is not None, proc.stderr[-2000:]
    assert json.loads(line[len("MODULES="):]) == []
    from pixlearn.cli.app import COMMANDS

    for name in COMMANDS:  # every command is listed, with its help
        assert f"\n  {name} " in proc.stdout, name


def test_command_table_matches_the_registered_commands():
    """The root's lazy table says what each module registers: same names, same one-line help."""
    from pixlearn.cli._clickmod import click
    from pixlearn.cli.app import COMMANDS, load_command

    for name, (_, text) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert command.get_short_help_str(300) == click.utils.make_default_short_help(text, 300), name


@pytest.fixture()
def fake_task(monkeypatch):
    """A task registered the way a new task package registers itself, with fresh command objects."""
    from pixlearn.cli import app as app_module
    from pixlearn.tasks import registry

    spec = registry.TaskSpec(
        name="sketchify", summary="Sketches from photos (a test task).", package="tests.cli",
        entry={k: "builtins:print" for k in registry.ENTRY_POINTS}, serves=("sketchify",),
        predicts="a sketch per image written to --out.",
    )
    registry.tasks()  # discover the real ones first
    monkeypatch.setitem(registry._REGISTRY, "sketchify", spec)
    monkeypatch.setattr(app_module, "_LOADED", {})
    return spec


def test_predict_help_lists_the_registered_tasks(fake_task):
    from typer.testing import CliRunner

    from pixlearn.cli.app import app

    result = CliRunner().invoke(app, ["predict", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("\u2502", " ").split())
    assert "sketchify (train sketchify): a sketch per image written to --out." in text
    assert "classify, detect, restore, segment, sketchify and classic" in text


def test_train_has_a_command_for_every_registered_task(fake_task):
    from typer.testing import CliRunner

    from pixlearn.cli.app import app

    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0, result.output
    for name in ("classic", "classify", "detect", "restore", "segment", "sketchify"):
        assert f" {name} " in result.output, name
    result = CliRunner().invoke(app, ["train", "sketchify", "--help"])  # the shared grammar, generated
    text = " ".join(result.output.replace("\u2502", " ").split())
    for option in ("--data", "--model", "--minutes", "--resume", "--extend", "--folds", "--find-lr", "--progress", "--set"):
        assert option in text, option
