"""The classification task: its loss options, the split policy, dataset errors and prediction from a run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixlearn._core.errors import ConfigError
from pixlearn.models import create_model, save_weights
from pixlearn.tasks.classify.module import ClassifyTask, inverse_frequency_weights, mix_batch
from pixlearn.tasks.classify.data import fold_splits, plan_splits, read_classify_dataset
from pixlearn.tasks.classify.predict import Classifier, load_classifier, model_card, predict_files
from tests.classify.helpers import colour_image, make_dataset


def _task(**kw):
    torch.manual_seed(0)
    return ClassifyTask(create_model("pixlearn_smallcnn_tiny", num_classes=3), num_classes=3, **kw)


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 3, 8, 8, generator=g), torch.tensor([0, 0, 0, 0, 1, 2])


def test_class_weights_change_the_loss():
    x, y = _batch()
    plain = _task().eval()
    uniform = _task(class_weights=[1.0, 1.0, 1.0]).eval()
    weighted = _task(class_weights=[0.2, 3.0, 3.0]).eval()
    with torch.no_grad():
        logits = plain.model(x)
        assert float(plain.training_loss(x, y)) == pytest.approx(float(F.cross_entropy(logits, y)))
        assert float(uniform.training_loss(x, y)) == pytest.approx(float(plain.training_loss(x, y)))
        expected = F.cross_entropy(logits, y, weight=torch.tensor([0.2, 3.0, 3.0]))
        assert float(weighted.training_loss(x, y)) == pytest.approx(float(expected))
        assert abs(float(weighted.training_loss(x, y)) - float(plain.training_loss(x, y))) > 1e-3


def test_inverse_frequency_weights_balance_the_classes():
    w = inverse_frequency_weights([40, 10, 0])
    assert w[0] * 40 == pytest.approx(w[1] * 10) and w[2] == 0.0


def test_label_smoothing_matches_torch():
    x, y = _batch()
    t = _task(label_smoothing=0.2).eval()
    with torch.no_grad():
        assert float(t.training_loss(x, y)) == pytest.approx(float(F.cross_entropy(t.model(x), y, label_smoothing=0.2)))


def test_mixup_and_cutmix_mix_targets_by_the_pasted_share():
    torch.manual_seed(3)
    n = 6
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()
    targets = F.one_hot(torch.arange(n), n).float()
    mixed, soft, lam = mix_batch(x, targets, mixup_alpha=0.4)
    assert soft.sum(dim=1).allclose(torch.ones(n)) and 0 < lam < 1
    partner = ((mixed[:, 0, 0, 0] - lam * torch.arange(n)) / (1 - lam)).round().long()  # which image each was mixed with
    expected = lam * targets + (1 - lam) * targets[partner]
    assert torch.allclose(soft, expected, atol=1e-5)
    cut, soft, lam = mix_batch(x, targets, cutmix_alpha=1.0)
    kept = (cut == x).float().mean(dim=(1, 2, 3))  # share of each image's own pixels
    moved = (cut != x).any(dim=(1, 2, 3))
    assert torch.allclose(soft.gather(1, torch.arange(n)[:, None]).squeeze(1)[moved], kept[moved])


def test_mixed_loss_runs_with_weights():
    x, y = _batch()
    t = _task(mixup_alpha=0.4, cutmix_alpha=1.0, class_weights=[1.0, 2.0, 2.0], label_smoothing=0.1)
    loss = t.training_loss(x, y)
    loss.backward()
    assert torch.isfinite(loss) and t.model.fc.weight.grad is not None


def test_validation_metrics_accumulate():
    t = _task()
    x, y = _batch()
    t.validation_update(x, y)
    t.validation_update(x, y)
    m = {k: float(v.compute()) for k, v in t.validation_metrics().items()}
    with torch.no_grad():
        pred = t.model(x).argmax(1)
    assert m["val_accuracy"] == pytest.approx(float((pred == y).float().mean()))


# ---------------------------------------------------------------- data and splits
def test_split_policy_with_and_without_a_test_folder(tmp_path):
    flat = read_classify_dataset(make_dataset(tmp_path / "flat", per_class=20))
    s = plan_splits(flat, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert s.test_name == "holdout" and s.counts() == {"train": 42, "val": 6, "holdout": 12}
    assert not set(s.train) & set(s.test) and not set(s.val) & set(s.test) and not set(s.train) & set(s.val)
    assert "stratified_split, seed 0" in s.sources["holdout"]
    assert plan_splits(flat, val_fraction=0.1, test_fraction=0.2, seed=0).test == s.test  # same seed, same split
    split = read_classify_dataset(make_dataset(tmp_path / "split", splits={"train": 10, "test": 3}))
    s = plan_splits(split, val_fraction=0.1, test_fraction=0.2, seed=0)
    assert s.test_name == "test" and len(s.test) == 9 and s.sources["test"] == "the dataset's test split"
    assert all(split.records[i].split == "train" for i in s.train + s.val)


def test_folds_cover_train_and_val_and_never_the_test_split(tmp_path):
    index = read_classify_dataset(make_dataset(tmp_path / "d", per_class=10))
    base = plan_splits(index, val_fraction=0.1, test_fraction=0.2, seed=0)
    folds = fold_splits(base, folds=3, seed=0)
    assert sorted(i for f in folds for i in f.val) == sorted(base.train + base.val)
    for f in folds:
        assert f.test == base.test and not set(f.train) & set(f.val) and not set(f.train) & set(base.test)


def test_dataset_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="no such folder or file; --data must be a folder with one sub-folder"):
        read_classify_dataset(tmp_path / "missing")
    make_dataset(tmp_path / "one", per_class=4, classes=("red",))
    with pytest.raises(ConfigError, match=r"single class \('red', 4 images\).*at least 2 classes"):
        read_classify_dataset(tmp_path / "one")
    from pixlearn.io import write_image

    write_image(tmp_path / "flat" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ConfigError, match="not labelled for classification"):
        read_classify_dataset(tmp_path / "flat")
    index = read_classify_dataset(make_dataset(tmp_path / "few", per_class=1))
    with pytest.raises(ConfigError, match="too few images"):
        plan_splits(index, val_fraction=0.0, test_fraction=0.1, seed=0)


# ---------------------------------------------------------------- prediction from a run folder
def _fake_run(root, classes=("red", "green", "blue")):
    torch.manual_seed(0)
    m = create_model("pixlearn_smallcnn_tiny", num_classes=len(classes), img_size=12)
    card = model_card(m, classes)
    save_weights(m, root / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(card)})
    (root / "weights" / "model.json").write_text(json.dumps(card))
    return m


def test_classifier_rebuilds_from_the_run_folder_alone(tmp_path):
    m = _fake_run(tmp_path / "run")
    clf = load_classifier(tmp_path / "run")
    assert clf.classes == ["red", "green", "blue"] and clf.preprocess.img_size == (12, 12)
    x = torch.rand(2, 3, 12, 12)
    assert torch.allclose(clf.predict_proba(x), torch.softmax(m.eval()(x), 1), atol=1e-6)
    from_file = load_classifier(tmp_path / "run" / "weights" / "best.safetensors")  # the file alone is enough too
    assert torch.allclose(from_file.predict_proba(x), clf.predict_proba(x))


def test_predict_files_reports_bad_files_in_their_row(tmp_path):
    _fake_run(tmp_path / "run")
    from pixlearn.io import write_image

    rng = np.random.default_rng(0)
    write_image(tmp_path / "imgs" / "a.png", colour_image("red", rng))
    write_image(tmp_path / "imgs" / "sub" / "b.png", colour_image("blue", rng, 20))
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png")
    rows = predict_files(tmp_path / "run", [tmp_path / "imgs", str(tmp_path / "nothing" / "*.png"), tmp_path / "gone.jpg"], top_k=2)
    by_name = {r["path"].split("/")[-1]: r for r in rows}
    assert set(by_name) == {"a.png", "b.png", "broken.png", "gone.jpg"}
    assert by_name["a.png"]["label"] in ("red", "green", "blue") and len(by_name["a.png"]["top_k"]) == 2
    assert by_name["a.png"]["top_k"][0]["score"] >= by_name["a.png"]["top_k"][1]["score"]
    assert by_name["broken.png"]["label"] is None and "ImageDecodeError" in by_name["broken.png"]["error"]
    assert "ImageNotFoundError" in by_name["gone.jpg"]["error"]


def test_load_classifier_explains_other_folders(tmp_path):
    with pytest.raises(ConfigError, match="no such run folder"):
        load_classifier(tmp_path / "nope")
    _fake_run(tmp_path / "cv" / "fold_1")
    with pytest.raises(ConfigError, match="k-fold"):
        load_classifier(tmp_path / "cv")
    (tmp_path / "classic").mkdir()
    (tmp_path / "classic" / "config.yaml").write_text("task: classify\nmethod: classic\n")
    with pytest.raises(ConfigError, match="classic"):
        load_classifier(tmp_path / "classic")


def test_classifier_predict_on_arrays():
    clf = Classifier(create_model("pixlearn_smallcnn_tiny", num_classes=2, img_size=8), ["cat", "dog"])
    rows = clf.predict([np.zeros((5, 7), np.uint8), np.zeros((9, 9, 3), np.uint8)], top_k=5)
    assert len(rows) == 2 and len(rows[0]["top_k"]) == 2
    assert sum(e["score"] for e in rows[0]["top_k"]) == pytest.approx(1.0, abs=1e-5)
