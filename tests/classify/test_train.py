"""Training a classifier end to end on tiny images: the run folder, resume, early stopping, class weights,
k-fold, NaN losses, freezing, DDP on CPU, and the train / predict / eval command lines."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
import yaml

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn.engine.trainer import auto_precision
from pixlearn.cli import main
from pixlearn.tasks.classify.metrics import classification_metrics
from pixlearn.models import read_state_dict
from pixlearn.tasks.classify.data import plan_splits, read_classify_dataset
from pixlearn.tasks.classify.predict import load_classifier
from pixlearn.tasks.classify.recipe import BACKBONE_LR_MULT
from pixlearn.train import TrainingDivergedError, train_classifier
from pixlearn.engine.runs import RUN_FILES
from tests.classify.helpers import make_dataset

ROOT = Path(__file__).resolve().parents[2]
FAST = {"model": "pixlearn_smallcnn_tiny", "img_size": 12, "batch": 8, "progress": False}
PLOTS = {"training_curves", "confusion_matrix", "confusion_matrix_normalized", "roc", "pr", "per_class", "mistakes"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "colours", per_class=16)


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory):
    return train_classifier(data_dir, epochs=2, out=tmp_path_factory.mktemp("runs") / "base", **FAST)


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- the run folder
def test_run_folder_holds_every_file(run, data_dir):
    d = run.run_dir
    for name in RUN_FILES:
        assert (d / name).is_file() and (d / name).stat().st_size > 0, name
    assert {p.stem for p in (d / "plots").glob("*.png")} == PLOTS
    assert not list(d.rglob("*.tmp"))  # atomic writes leave nothing behind

    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["model"]["name"] == "pixlearn_smallcnn_tiny" and cfg["train"]["epochs"] == 2
    assert cfg["optim"]["lr"] > 0 and cfg["train"]["precision"] == auto_precision("cpu") and cfg["train"]["accelerator"] == "cpu"  # resolved

    manifest = json.loads((d / "manifest.json").read_text())
    index = read_classify_dataset(data_dir)
    assert manifest["status"] == "finished" and manifest["seed"] == 0
    assert manifest["data"]["fingerprint"] == index.fingerprint()
    assert {"torch", "lightning", "timm"} <= set(manifest["packages"]) and "git_commit" in manifest
    assert manifest["device"]["accelerator"] == "cpu"

    rows = _csv(d / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(float(r["train_loss"]) > 0 and float(r["val_loss"]) > 0 and float(r["lr"]) > 0 for r in rows)
    assert all(float(r["epoch_seconds"]) > 0 for r in rows)

    metrics = json.loads((d / "metrics.json").read_text())
    schema = set(classification_metrics([0, 1, 2], [0, 1, 2], classes=["a", "b", "c"], scores=torch.eye(3).numpy()))
    assert schema <= set(metrics) and metrics["split"] == "holdout" and metrics["val"]["split"] == "val"
    assert metrics["splits"]["holdout"]["used_for"].startswith("the final scores only")
    assert metrics["n"] == len(plan_splits(index, val_fraction=0.1, test_fraction=0.1, seed=0).test)

    report = (d / "report.html").read_text()
    assert "Where every number comes from" in report and "holdout (" in report and "val (" in report
    assert report.count("data:image/png;base64") == len(PLOTS)


def test_test_images_never_reach_training(run, data_dir):
    index = read_classify_dataset(data_dir)
    splits = plan_splits(index, val_fraction=0.1, test_fraction=0.1, seed=0)
    assert not set(splits.test) & set(splits.train) and not set(splits.test) & set(splits.val)
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["data"]["splits"]["counts"] == {"train": len(splits.train), "val": len(splits.val), "holdout": len(splits.test)}


def test_model_rebuilds_from_the_folder_and_eval_reproduces_the_scores(run, data_dir):
    from pixlearn.tasks.classify.evaluate import evaluate_run

    clf = load_classifier(run.run_dir)
    assert clf.classes == ["blue", "green", "red"]
    again = evaluate_run(run.run_dir, data_dir)  # same data: the run's own held-out split
    assert again["split"] == "holdout" and again["accuracy"] == run.metrics["accuracy"]
    assert again["confusion_matrix"] == run.metrics["confusion_matrix"]


# ---------------------------------------------------------------- resume, extend, early stopping
class Crash(L.Callback):
    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.at_epoch:
            raise RuntimeError("simulated crash")


def test_resume_equals_an_uninterrupted_run_then_extend(data_dir, tmp_path):
    kw = {**FAST, "epochs": 3, "mixup": 0.3, "set": ["model.drop_rate=0.2"]}
    whole = train_classifier(data_dir, out=tmp_path / "whole", **kw)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_classifier(data_dir, out=tmp_path / "cut", callbacks=[Crash(2)], **kw)
    assert json.loads((tmp_path / "cut" / "manifest.json").read_text())["status"] == "failed"
    assert len(_csv(tmp_path / "cut" / "metrics.csv")) == 2
    resumed = train_classifier(resume=tmp_path / "cut", progress=False)

    for a, b in zip(whole.history, resumed.history):
        for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["epoch"], key)
    wa, wb = read_state_dict(tmp_path / "whole" / "weights" / "best.safetensors"), read_state_dict(tmp_path / "cut" / "weights" / "best.safetensors")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert resumed.metrics["accuracy"] == whole.metrics["accuracy"]

    with pytest.raises(ConfigError, match="--extend N"):
        train_classifier(resume=tmp_path / "cut", progress=False)
    with pytest.raises(ConfigError, match="keeps its configuration"):
        train_classifier(resume=tmp_path / "cut", lr=0.1, progress=False)
    longer = train_classifier(resume=tmp_path / "cut", extend=1, progress=False)
    assert longer.epochs_run == 4 and [r["epoch"] for r in longer.history] == [1, 2, 3, 4]
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert [r["from_epoch"] for r in manifest["resumed"]] == [2, 3] and manifest["status"] == "finished"
    assert yaml.safe_load((tmp_path / "cut" / "config.yaml").read_text())["train"]["epochs"] == 4


def test_early_stopping_fires(data_dir, tmp_path):
    # no change counts as an improvement when min_delta exceeds the metric's range: stop after patience epochs
    res = train_classifier(data_dir, out=tmp_path / "es", epochs=6, patience=1, set=["train.min_delta=2.0"], **FAST)
    assert res.stopped_early and res.epochs_run == 2
    assert json.loads((tmp_path / "es" / "metrics.json").read_text())["stopped_early"] is True


def test_class_weights_change_the_training_loss(tmp_path):
    data = make_dataset(tmp_path / "imbalanced", per_class={"red": 30, "green": 6, "blue": 6})
    plain = train_classifier(data, out=tmp_path / "plain", epochs=1, **FAST)
    weighted = train_classifier(data, out=tmp_path / "weighted", epochs=1, balance="loss", **FAST)
    assert abs(plain.history[0]["train_loss"] - weighted.history[0]["train_loss"]) > 1e-4


def test_k_fold_reports_mean_and_std(data_dir, tmp_path):
    res = train_classifier(data_dir, out=tmp_path / "cv", epochs=1, folds=2, **FAST)
    assert len(res.folds) == 2
    for i in (1, 2):
        fold = tmp_path / "cv" / f"fold_{i}"
        assert all((fold / name).is_file() for name in RUN_FILES)
        assert yaml.safe_load((fold / "config.yaml").read_text())["train"]["fold"] == i
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    acc = m["cv"]["metrics"]["holdout_accuracy"]
    assert len(acc["per_fold"]) == 2 and acc["mean"] == pytest.approx(sum(acc["per_fold"]) / 2) and acc["std"] >= 0
    assert m["cv"]["accuracy_mean"] == acc["mean"]
    assert "mean ± std" in (tmp_path / "cv" / "report.html").read_text()
    assert {r["fold"] for r in _csv(tmp_path / "cv" / "metrics.csv")} == {"1", "2"}
    tests = [set(res.folds[i].metrics["splits"]) for i in (0, 1)]
    assert tests[0] == tests[1]


class PoisonLoss(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            task = pl_module.task
            original = type(task).training_loss
            task.training_loss = lambda images, labels: original(task, images, labels) * float("nan")


def test_nan_loss_fails_clearly_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
    with pytest.raises(TrainingDivergedError, match=r"became nan at epoch 2, step \d+ .*last good checkpoint"):
        train_classifier(data_dir, out=tmp_path / "nan", epochs=3, callbacks=[PoisonLoss()], **FAST)
    state = torch.load(tmp_path / "nan" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert json.loads((tmp_path / "nan" / "manifest.json").read_text())["status"] == "failed"


class Snapshot(L.Callback):
    def __init__(self):
        self.states = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.states.append({k: v.clone() for k, v in pl_module.task.model.state_dict().items()})


def test_freeze_backbone_then_unfreeze_with_a_lower_lr(run, data_dir, tmp_path):
    snap = Snapshot()
    weights = run.run_dir / "weights" / "best.safetensors"
    res = train_classifier(data_dir, out=tmp_path / "ft", epochs=2, freeze_epochs=1, weights=str(weights), callbacks=[snap], **FAST)
    start = read_state_dict(weights)
    conv = "features.0.stem.0.weight"
    assert torch.equal(snap.states[0][conv], start[conv])  # frozen in epoch 1
    assert not torch.equal(snap.states[1][conv], start[conv])  # trained in epoch 2
    assert not torch.equal(snap.states[0]["fc.weight"], start["fc.weight"])  # the head trains from the start
    assert [r["backbone_frozen"] for r in res.history] == [True, False]
    assert res.history[1]["backbone_lr"] == pytest.approx(BACKBONE_LR_MULT * res.history[1]["lr"])


def test_other_recipes_train(tmp_path):
    data = make_dataset(tmp_path / "d", per_class={"red": 20, "green": 8, "blue": 8})
    res = train_classifier(
        data, out=tmp_path / "r", epochs=2, optimizer="sgd", schedule="plateau", cutmix=1.0, mixup=0.2, balance="sampler",
        label_smoothing=0.0, augment="light", set=["optim.l1=1e-5", "optim.grad_clip=1.0", "model.drop_path_rate=0.1"], **FAST,
    )
    assert res.epochs_run == 2 and all(r["train_loss"] == r["train_loss"] for r in res.history)
    onecycle = train_classifier(data, out=tmp_path / "o", epochs=1, schedule="onecycle", folds=0, **FAST)
    assert onecycle.history[0]["lr"] < onecycle.config.optim.lr * 1e-3  # annealed to the floor at the end


def test_deterministic_mode_leaves_the_process_as_it_was(data_dir, tmp_path):
    res = train_classifier(data_dir, out=tmp_path / "det", epochs=1, deterministic=True, **FAST)
    assert res.config.train.deterministic and not torch.are_deterministic_algorithms_enabled()


# ---------------------------------------------------------------- errors
def test_errors_before_anything_is_written(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="no such folder"):
        train_classifier(tmp_path / "missing", out=tmp_path / "r1", **FAST)
    make_dataset(tmp_path / "one", per_class=4, classes=("red",))
    with pytest.raises(ConfigError, match="single class"):
        train_classifier(tmp_path / "one", out=tmp_path / "r2", **FAST)
    with pytest.raises(UnknownNameError, match="did you mean 'resnet18'"):
        train_classifier(data_dir, out=tmp_path / "r3", **{**FAST, "model": "resnet19"})
    with pytest.raises(UnknownNameError, match="did you mean 'epochs'"):
        train_classifier(data_dir, out=tmp_path / "r4", epoch=3)
    assert not any((tmp_path / name).exists() for name in ("r1", "r2", "r3", "r4"))


def test_cli_train_errors_and_offline_pretrained(tmp_path, data_dir, capsys, monkeypatch):
    code, _, err = cli(["train", "classify", "--data", tmp_path / "missing"], capsys)
    assert code == 1 and "no such folder" in err and err.count("\n") == 1
    code, _, err = cli(["train", "classify", "--data", data_dir, "--model", "resnt18"], capsys)
    assert code == 1 and "did you mean 'resnet18'" in err
    code, _, err = cli(["train", "classify", "--data", data_dir, "--epochz", "2"], capsys)
    assert code == 2 and "--epochs" in err
    monkeypatch.setenv("PIXLEARN_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    code, _, err = cli(["train", "classify", "--data", data_dir, "--model", "resnet10t", "--pretrained", "--out", tmp_path / "p"], capsys)
    assert code == 1 and "--weights PATH" in err and "huggingface.co/timm/resnet10t" in err


def test_cli_train_with_lr_finder(tmp_path, data_dir, capsys):
    code, out, err = cli(["train", "classify", "--data", data_dir, "--model", "pixlearn_smallcnn_tiny", "--epochs", "1",
                          "--img-size", "12", "--batch", "8", "--find-lr", "--out", tmp_path / "lr", "--no-progress", "--format", "json"], capsys)
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["split"] == "holdout" and "accuracy" in metrics
    assert (tmp_path / "lr" / "plots" / "lr_find.png").is_file()
    manifest = json.loads((tmp_path / "lr" / "manifest.json").read_text())
    assert "lr_find" in manifest and "run folder:" in err


# ---------------------------------------------------------------- predict and eval
def test_cli_predict_formats_and_bad_files(run, data_dir, tmp_path, capsys):
    images = sorted((data_dir / "red").glob("*.png"))[:2]
    code, out, err = cli(["predict", run.run_dir, *images, "--format", "json", "--top-k", "2"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [Path(r["path"]).name for r in rows] == [p.name for p in images]
    assert all(len(r["top_k"]) == 2 and r["error"] is None for r in rows)
    (tmp_path / "bad.png").write_bytes(b"junk")
    code, out, err = cli(["predict", run.run_dir, images[0], tmp_path / "bad.png", "--format", "csv", "--top-k", "2"], capsys)
    lines = out.strip().splitlines()
    assert code == 1 and "1 of 2 image(s) could not be read" in err
    assert lines[0] == "path,label,score,label_2,score_2,error" and "ImageDecodeError" in lines[2]
    code, out, _ = cli(["predict", run.run_dir, str(data_dir / "*" / "*_000.png")], capsys)
    assert code == 0 and len(out.strip().splitlines()) == 4  # table: header + one image per class
    code, _, err = cli(["predict", tmp_path / "no-run", images[0]], capsys)
    assert code == 1 and "no such run folder" in err


def test_cli_predict_takes_a_classic_run_too(data_dir, tmp_path, capsys):
    import warnings

    from pixlearn.classic import train_classic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_classic(data_dir, img_size=16, folds=0, out=tmp_path / "classic")
    image = sorted((data_dir / "green").glob("*.png"))[0]
    code, out, err = cli(["predict", tmp_path / "classic", image, "--format", "json"], capsys)
    assert code == 0, err
    [row] = json.loads(out)
    assert row["label"] == "green" and row["error"] is None


def test_cli_eval(run, data_dir, tmp_path, capsys):
    code, out, err = cli(["eval", run.run_dir, "--data", data_dir, "--format", "json", "--out", tmp_path / "ev"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["split"] == "holdout" and result["accuracy"] == run.metrics["accuracy"]
    assert (tmp_path / "ev" / "report.html").is_file() and (tmp_path / "ev" / "metrics.json").is_file()
    code, out, err = cli(["eval", run.run_dir, "--data", data_dir, "--split", "all"], capsys)
    assert code == 0 and "all (n=48)" in out
    code, _, err = cli(["eval", run.run_dir, "--data", data_dir, "--split", "val"], capsys)
    assert code == 1 and "has no 'val' split" in err
    code, _, err = cli(["eval", run.run_dir, "--data", data_dir, "--split", "tset"], capsys)
    assert code == 1 and "did you mean 'test'" in err


# ---------------------------------------------------------------- DDP on CPU
def test_two_process_ddp_gives_the_same_result_shape(run, data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "1"  # two processes on a small machine: one thread each
    cmd = [sys.executable, "-m", "pixlearn.cli", "train", "classify", "--data", str(data_dir), "--model", "pixlearn_smallcnn_tiny",
           "--epochs", "2", "--img-size", "12", "--batch", "8", "--out", str(tmp_path / "ddp"), "--devices", "2",
           "--strategy", "ddp", "--accelerator", "cpu", "--no-progress", "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads(proc.stdout)  # only rank 0 prints
    single = json.loads((run.run_dir / "metrics.json").read_text())
    assert set(ddp) == set(single) and ddp["classes"] == single["classes"] and ddp["n"] == single["n"]
    assert set(ddp["per_class"]) == set(single["per_class"]) and len(ddp["confusion_matrix"]) == 3
    assert _csv(tmp_path / "ddp" / "metrics.csv")[0].keys() == _csv(run.run_dir / "metrics.csv")[0].keys()
    assert len(_csv(tmp_path / "ddp" / "metrics.csv")) == 2
    manifest = json.loads((tmp_path / "ddp" / "manifest.json").read_text())
    assert manifest["device"]["devices"] == 2 and manifest["device"]["strategy"] == "ddp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # rank 1 wrote no folder of its own
