"""k-fold cross-validation, written once in pixlearn.engine.kfold, on every task."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import yaml

from pixlearn._core.errors import ConfigError
from pixlearn.engine.kfold import fold_of, fold_splits


@dataclass
class Plan:
    train: list
    val: list
    test: list
    sources: dict = field(default_factory=dict)


def test_folds_cover_train_and_val_once_and_never_touch_test():
    plan = Plan(list(range(10)), [10, 11], ["t1", "t2"])
    folds = fold_splits(plan, folds=3, seed=1)
    assert sorted(v for f in folds for v in f.val) == list(range(12))
    for f in folds:
        assert not set(f.train) & set(f.val) and sorted(f.train + f.val) == list(range(12)) and f.test == ["t1", "t2"]
        assert "fold" in f.sources["val"]
    assert fold_of(plan, folds=3, fold=2, seed=1) == folds[1] and fold_splits(plan, folds=3, seed=1) == folds  # seeded
    with pytest.raises(ConfigError, match="fewer --folds"):
        fold_splits(Plan([1, 2], [], []), folds=3, seed=0)
    with pytest.raises(ConfigError, match="1..3"):
        fold_of(plan, folds=3, fold=4, seed=0)


def test_every_task_runs_k_fold_and_reports_mean_and_std(task, tmp_path, monkeypatch):
    import pixlearn.engine.kfold as kfold

    calls, real = [], kfold.run_folds

    def spy(*args, **kwargs):
        calls.append(kwargs["task"])
        return real(*args, **kwargs)

    monkeypatch.setattr(kfold, "run_folds", spy)  # every task's k-fold goes through the engine's one loop
    res = task.run(tmp_path / "cv", epochs=1, folds=2)
    assert calls == [task.name]
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert m["kind"] == "k-fold" and m["cv"]["folds"] == 2 and len(m["folds"]) == 2
    assert m["cv"]["metrics"], m["cv"]
    for v in m["cv"]["metrics"].values():
        assert len(v["per_fold"]) == 2 and v["mean"] == pytest.approx(sum(v["per_fold"]) / 2) and v["std"] >= 0
    for i in (1, 2):
        fold = tmp_path / "cv" / f"fold_{i}"
        assert (fold / "weights" / "best.safetensors").is_file() and (fold / "metrics.json").is_file()
        assert yaml.safe_load((fold / "config.yaml").read_text())["train"]["fold"] == i
    assert (tmp_path / "cv" / "report.html").is_file() and (tmp_path / "cv" / "metrics.csv").is_file()
    assert "mean ± std" in (tmp_path / "cv" / "report.html").read_text()  # the cross-validation table, every task
    assert res.metrics == m
    _check_folds_verdict(tmp_path / "cv", m, folds=2)


def _check_folds_verdict(run, m, *, folds):
    """The k-fold summary's verdict: the folds' mean held-out score against their baselines' means, with the spread."""
    import html

    per_fold = [json.loads((run / f"fold_{i}" / "metrics.json").read_text())["verdict"] for i in range(1, folds + 1)]
    v = m["verdict"]
    scores = [f["model_value"] for f in per_fold]
    assert v["fold_values"] == pytest.approx(scores) and v["model_value"] == pytest.approx(sum(scores) / folds)
    assert v["spread"] == pytest.approx((sum((x - v["model_value"]) ** 2 for x in scores) / folds) ** 0.5)
    assert v["split"] == per_fold[0]["split"] and v["metric"] == per_fold[0]["metric"]
    for j, b in enumerate(v["baselines"]):
        assert b["value"] == pytest.approx(sum(f["baselines"][j]["value"] for f in per_fold) / folds)
    assert v["folds_beating"] == sum(f["beats"] for f in per_fold)
    assert f"mean {v['metric']} over {folds} folds" in v["sentence"] and " ± " in v["sentence"]
    assert f"of {folds} beat every baseline on their own" in v["sentence"]
    assert json.loads((run / "manifest.json").read_text())["verdict"] == v
    assert html.escape(v["sentence"]) in (run / "report.html").read_text()


def test_the_k_fold_summary_prints_its_verdict(tmp_path, capsys, _task_data):
    from pixlearn.cli import main

    task = _task_data["classify"]
    code = main(["train", "classify", "--data", str(task.data), *task.cli, "--epochs", "1", "--folds", "2", "--out", str(tmp_path / "cv")])
    err = capsys.readouterr().err
    assert code == 0, err
    m = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    assert m["verdict"]["sentence"] in err
    _check_folds_verdict(tmp_path / "cv", m, folds=2)


def test_find_lr_and_folds_do_not_mix(task, tmp_path):
    with pytest.raises(ConfigError, match="--find-lr and --folds"):
        task.run(tmp_path / "x", epochs=1, folds=2, find_lr=True)
