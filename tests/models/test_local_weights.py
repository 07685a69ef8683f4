"""Local pretrained weights, the timm way: lookup order, strict checks, `pixlearn weights add/list/path`, encoders.

Every test runs on timm's tiny ``test_*`` models with random weights, offline, with any download
path made to fail loudly.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import pytest
import torch

from pixlearn.cli import main
from pixlearn.models import (
    WeightsMismatchError,
    WeightsNotFoundError,
    add_weights,
    create_model,
    create_segmentation_model,
    find_pretrained,
    save_weights,
)

MODEL = "test_efficientnet"  # 0.36 M parameters; timm's default tag for it is r160_in1k
TAG = "r160_in1k"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "weights" / "tf_efficientnet_lite0.in1k.safetensors"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Offline, a fresh cache, PIXLEARN_WEIGHTS unset, and every download path raising."""
    monkeypatch.setenv("PIXLEARN_OFFLINE", "1")
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("PIXLEARN_WEIGHTS", raising=False)
    downloads: list[str] = []

    def no_network(*args, **kwargs):
        downloads.append(repr(args)[:80])
        raise OSError("network access in a test")

    import timm.models._builder as builder

    monkeypatch.setattr(builder, "load_pretrained", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    (tmp_path / "downloads").mkdir()
    return {"tmp": tmp_path, "cache": tmp_path / "cache" / "weights", "downloads": downloads}


def random_timm(name: str = MODEL, *, seed: int = 0, **kwargs):
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **kwargs)


def saved(path: Path, *, name: str = MODEL, seed: int = 0, **kwargs):
    model = random_timm(name, seed=seed, **kwargs)
    save_weights(model, path)
    return model


# ---------------------------------------------------------------- lookup
def test_pixlearn_weights_folders_come_before_the_cache_whatever_the_names(env, monkeypatch):
    first, second = env["tmp"] / "w1", env["tmp"] / "w2"
    in_cache = saved(env["cache"] / f"{MODEL}.{TAG}.safetensors", seed=1)
    in_second = saved(second / f"{MODEL}.safetensors", seed=2)
    first.mkdir()
    monkeypatch.setenv("PIXLEARN_WEIGHTS", os.pathsep.join([str(first), str(second)]))
    assert find_pretrained(MODEL) == second / f"{MODEL}.safetensors"  # an empty first folder is passed over
    m = create_model(MODEL, num_classes=1000, pretrained=True)
    assert torch.equal(m.conv_stem.weight, in_second.conv_stem.weight)
    monkeypatch.delenv("PIXLEARN_WEIGHTS")
    m = create_model(MODEL, num_classes=1000, pretrained=True)
    assert torch.equal(m.conv_stem.weight, in_cache.conv_stem.weight)
    assert env["downloads"] == []


def test_in_one_folder_the_default_tag_comes_before_the_bare_name_and_a_tag_asks_for_its_file(env):
    bare = saved(env["cache"] / f"{MODEL}.safetensors", seed=1)
    assert find_pretrained(MODEL) == env["cache"] / f"{MODEL}.safetensors"
    assert find_pretrained(f"{MODEL}.{TAG}") is None  # a tagged name wants its tagged file
    tagged = saved(env["cache"] / f"{MODEL}.{TAG}.safetensors", seed=2)
    assert find_pretrained(MODEL) == env["cache"] / f"{MODEL}.{TAG}.safetensors"
    m = create_model(f"{MODEL}.{TAG}", num_classes=1000, pretrained=True)
    assert torch.equal(m.conv_stem.weight, tagged.conv_stem.weight)
    assert not torch.equal(m.conv_stem.weight, bare.conv_stem.weight)


def test_another_class_count_keeps_the_backbone_and_starts_a_fresh_head(env):
    src = saved(env["cache"] / f"{MODEL}.safetensors")
    m = create_model(MODEL, num_classes=3, pretrained=True)
    assert m.classifier.weight.shape[0] == 3
    assert torch.equal(m.blocks[-1][0].conv_pw.weight, src.blocks[-1][0].conv_pw.weight)
    assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 3)


def test_offline_without_a_local_file_names_the_files_folders_and_both_fixes(env, monkeypatch):
    extra = env["tmp"] / "extra"
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(extra))
    with pytest.raises(WeightsNotFoundError) as err:
        create_model(MODEL, num_classes=3, pretrained=True)
    msg = str(err.value)
    assert f"{MODEL}.{TAG}.safetensors or {MODEL}.safetensors in {extra}, {env['cache']}" in msg
    assert "--weights PATH" in msg and f"pixlearn weights add FILE --model {MODEL} --tag {TAG}" in msg
    assert str(extra / f"{MODEL}.{TAG}.safetensors") in msg


# ---------------------------------------------------------------- strict checks
def test_a_file_missing_a_tensor_is_refused_naming_it(env):
    state = random_timm().state_dict()
    del state["conv_stem.weight"]
    save_weights(state, env["cache"] / f"{MODEL}.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"1 tensor\(s\) missing from the file \(conv_stem.weight\)"):
        create_model(MODEL, num_classes=3, pretrained=True)


def test_a_file_of_another_model_says_what_it_seems_to_be_for(env):
    saved(env["cache"] / f"{MODEL}.safetensors", name="test_resnet")
    with pytest.raises(WeightsMismatchError) as err:
        create_model(MODEL, num_classes=3, pretrained=True)
    msg = str(err.value)
    assert "missing from the file (blocks.0.0.bn1.bias" in msg and "not in the model (bn1.bias" not in msg
    assert "seems to be for a ResNet-family network (conv1, layer1.*)" in msg and "a 1000-class classifier" in msg


def test_a_backbone_tensor_of_another_shape_is_refused_but_the_classifier_may_differ(env):
    state = random_timm().state_dict()
    state["conv_head.weight"] = torch.zeros(8, *state["conv_head.weight"].shape[1:])
    save_weights(state, env["cache"] / f"{MODEL}.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"with another shape \(conv_head.weight: file \(8, "):
        create_model(MODEL, num_classes=3, pretrained=True)


# ---------------------------------------------------------------- pixlearn weights add / list / path
def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_weights_add_checks_copies_under_the_timm_name_and_never_touches_the_source(env, monkeypatch, capsys):
    first = env["tmp"] / "mine"
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(first))
    src = env["tmp"] / "downloads" / "model.safetensors"
    model = saved(src)
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    code, out, err = run(["weights", "add", str(src), "--model", MODEL, "--tag", TAG, "--format", "json"], capsys)
    assert code == 0, err
    row = json.loads(out)
    dest = first / f"{MODEL}.{TAG}.safetensors"
    assert (row["status"], row["path"], row["num_classes"]) == ("added", str(dest), 1000)
    assert dest.read_bytes() == before[0] and (src.read_bytes(), src.stat().st_mtime_ns) == before
    assert not [p for p in first.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert torch.equal(create_model(MODEL, num_classes=5, pretrained=True).conv_stem.weight, model.conv_stem.weight)

    code, out, err = run(["weights", "list", "--format", "json"], capsys)
    assert code == 0
    [entry] = json.loads(out)
    assert (entry["model"], entry["tag"], entry["size"], entry["folder"]) == (MODEL, TAG, dest.stat().st_size, str(first))
    assert entry["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()[:12]
    assert entry["serves"] == [f"{MODEL}.{TAG}", MODEL, f"tu-{MODEL}"]
    code, out, _ = run(["weights", "path", f"tu-{MODEL}"], capsys)
    assert (code, out.strip()) == (0, str(dest))


def test_weights_add_refuses_to_overwrite_other_weights_without_force(env, capsys):
    a, b = env["tmp"] / "downloads" / "a.safetensors", env["tmp"] / "downloads" / "b.safetensors"
    saved(a, seed=1)
    saved(b, seed=2)
    assert run(["weights", "add", str(a), "--model", MODEL], capsys)[0] == 0
    dest = env["cache"] / f"{MODEL}.safetensors"
    code, _, err = run(["weights", "add", str(b), "--model", MODEL], capsys)
    assert code == 1 and "already holds other weights" in err and "--force" in err
    assert dest.read_bytes() == a.read_bytes()
    code, _, err = run(["weights", "add", str(a), "--model", MODEL], capsys)  # the same bytes again: nothing to do
    assert code == 0 and "already there" in err
    code, out, _ = run(["weights", "add", str(b), "--model", MODEL, "--force", "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["status"] == "replaced"
    assert dest.read_bytes() == b.read_bytes()


def test_weights_add_refuses_a_file_that_does_not_fit_and_writes_nothing(env, capsys):
    src = env["tmp"] / "downloads" / "resnet.safetensors"
    saved(src, name="test_resnet")
    code, _, err = run(["weights", "add", str(src), "--model", MODEL], capsys)
    assert code == 1 and f"does not fit model '{MODEL}'" in err and "ResNet-family" in err and err.count("\n") == 1
    assert not env["cache"].exists() or not list(env["cache"].iterdir())
    code, _, err = run(["weights", "add", str(src), "--model", "test_resnet", "--tag", "a/b"], capsys)
    assert code == 1 and "tag 'a/b' must be letters, digits" in err


def test_weights_add_checks_at_the_pretrained_class_count_and_a_tag_of_ones_own_takes_the_files(env):
    src = env["tmp"] / "downloads" / "ten.safetensors"
    ten = saved(src, num_classes=10)
    with pytest.raises(WeightsMismatchError, match=r"classifier.weight: file \(10, \d+\) vs model \(1000, \d+\)"):
        add_weights(src, MODEL)  # timm's test_efficientnet is a 1000-class ImageNet model
    result = add_weights(src, MODEL, tag="mine")
    assert (result["num_classes"], Path(result["path"]).name) == (10, f"{MODEL}.mine.safetensors")
    m = create_model(f"{MODEL}.mine", num_classes=10, pretrained=True)
    assert torch.equal(m.classifier.weight, ten.classifier.weight)
    with pytest.raises(WeightsNotFoundError):  # the bare name does not take another tag's file
        create_model(MODEL, num_classes=10, pretrained=True)


def test_weights_add_takes_the_tag_from_the_files_own_name_and_refuses_pickles(env):
    src = env["tmp"] / "downloads" / f"{MODEL}.{TAG}.safetensors"
    saved(src)
    assert Path(add_weights(src, MODEL)["path"]).name == f"{MODEL}.{TAG}.safetensors"
    torch.save(random_timm().state_dict(), env["tmp"] / "downloads" / "w.pth")
    with pytest.raises(Exception, match=r"\.safetensors files .* convert it first"):
        add_weights(env["tmp"] / "downloads" / "w.pth", MODEL)


def test_info_shows_the_weights_folders_and_their_file_counts(env, monkeypatch, capsys):
    first = env["tmp"] / "mine"
    monkeypatch.setenv("PIXLEARN_WEIGHTS", str(first))
    saved(env["cache"] / f"{MODEL}.safetensors")
    code, out, _ = run(["info", "--format", "json"], capsys)
    assert code == 0
    assert json.loads(out)["weights"]["folders"] == [{"folder": str(first), "files": 0}, {"folder": str(env["cache"]), "files": 1}]


# ---------------------------------------------------------------- segmentation encoders
def test_a_tu_encoder_takes_the_local_file_without_its_classifier(env):
    src = saved(env["cache"] / f"{MODEL}.safetensors")
    m = create_segmentation_model("unet", encoder=f"tu-{MODEL}", num_classes=2, img_size=64, pretrained=True)
    enc = dict(m.encoder.model.named_parameters())
    assert torch.equal(enc["conv_stem.weight"], src.conv_stem.weight)
    last = len(src.blocks) - 1
    assert torch.equal(enc[f"blocks.{last}.0.conv_pwl.weight"], src.blocks[last][0].conv_pwl.weight)
    assert not any(k.startswith(("classifier", "conv_head")) for k in enc)  # what the feature extractor drops
    assert env["downloads"] == []


def test_an_encoder_with_flattened_stage_names_is_matched_to_the_timm_keys(env):
    path = env["tmp"] / "downloads" / "convnext.safetensors"
    src = saved(path, name="test_convnext")
    m = create_segmentation_model("unet", encoder="tu-test_convnext", num_classes=2, img_size=64, encoder_weights=path)
    enc = dict(m.encoder.model.named_parameters())
    assert "stages_1.downsample.1.weight" in enc  # timm's feature wrapper renames stages.1 -> stages_1
    assert torch.equal(enc["stages_1.downsample.1.weight"], src.stages[1].downsample[1].weight)


def test_encoder_files_are_checked_strictly_and_a_missing_one_says_how_to_add_it(env):
    with pytest.raises(WeightsNotFoundError, match=f"pixlearn weights add FILE --model {MODEL} --tag {TAG}"):
        create_segmentation_model("unet", encoder=f"tu-{MODEL}", num_classes=2, pretrained=True)
    saved(env["cache"] / f"{MODEL}.safetensors", name="test_resnet")
    with pytest.raises(WeightsMismatchError, match="ResNet-family"):
        create_segmentation_model("unet", encoder=f"tu-{MODEL}", num_classes=2, pretrained=True)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_file(), reason="../shared/weights is not on this machine")
def test_the_shared_efficientnet_lite0_file_is_accepted_and_serves_the_encoder(env):
    result = add_weights(SHARED, "tf_efficientnet_lite0")
    assert (result["status"], result["num_classes"], Path(result["path"]).name) == ("added", 1000, SHARED.name)
    from safetensors.torch import load_file

    stem = load_file(str(SHARED))["conv_stem.weight"]
    m = create_segmentation_model("unet", encoder="tu-tf_efficientnet_lite0", num_classes=2, img_size=64, pretrained=True)
    assert torch.equal(m.encoder.model.conv_stem.weight, stem)


def test_train_segment_takes_pretrained_through_to_the_encoder(env, tmp_path):
    from pixlearn.data.samples import write_sample
    from pixlearn.tasks.segment.train import train_segmenter

    write_sample("shapes", tmp_path / "seg", n=8, task="segment", size=32)
    with pytest.raises(WeightsNotFoundError, match=f"tu-{MODEL}"):  # nothing local: refused before any training
        train_segmenter(tmp_path / "seg", backbone=f"tu-{MODEL}", pretrained=True, img_size=32, epochs=1, out=tmp_path / "run")
