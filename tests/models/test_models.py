"""The model registry and factory: names with suggestions, preprocessing read back, specs that rebuild, weights files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixlearn._core.errors import ConfigError, ShapeError, UnknownNameError
from pixlearn.models import (
    ModelSpec,
    WeightsNotFoundError,
    build_from_spec,
    check_model_name,
    create_model,
    get_preprocess,
    load_weights,
    pixlearn_weights_path,
    read_state_dict,
    save_weights,
    set_backbone_trainable,
    split_parameters,
)


@pytest.mark.parametrize("name", ["pixlearn_smallcnn", "pixlearn_smallcnn_tiny", "pixlearn_smallcnn_wide"])
@pytest.mark.parametrize("size", [8, 32])
def test_small_cnns_take_tiny_images(name, size):
    m = create_model(name, num_classes=5, img_size=size).eval()
    assert m(torch.zeros(2, 3, size, size)).shape == (2, 5)
    pre = get_preprocess(m)
    assert pre.input_size == (3, size, size) and len(pre.mean) == len(pre.std) == 3
    assert m.forward_head(m.forward_features(torch.zeros(1, 3, size, size)), pre_logits=True).shape == (1, m.num_features)


def test_spec_round_trip_rebuilds_the_same_network():
    m = create_model("pixlearn_smallcnn_tiny", num_classes=3, drop_rate=0.3, drop_path_rate=0.1, img_size=16).eval()
    spec = ModelSpec.from_dict(m.pixlearn_spec.to_dict())
    assert spec == m.pixlearn_spec and spec.kwargs == {"drop_rate": 0.3, "drop_path_rate": 0.1}
    rebuilt = build_from_spec(spec).eval()
    rebuilt.load_state_dict(m.state_dict())
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(rebuilt(x), m(x))


def test_timm_model_with_options_and_preprocess():
    m = create_model("resnet10t", num_classes=4, drop_rate=0.2, img_size=40)
    assert m.pixlearn_spec.source == "timm" and m.pixlearn_spec.head == ("fc",)
    assert m.pixlearn_spec.kwargs == {"drop_rate": 0.2}
    assert get_preprocess(m).input_size == (3, 40, 40)
    assert m.eval()(torch.zeros(1, 3, 40, 40)).shape == (1, 4)


@pytest.mark.parametrize("name, size", [("alexnet", 64), ("inception_v3", 80)])
def test_torchvision_models(name, size):
    m = create_model(name, num_classes=3, img_size=size).train()
    out = m(torch.zeros(2, 3, size, size))  # inception: no aux logits, a plain tensor
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)
    assert m.pixlearn_spec.source == "torchvision"
    backbone, head = split_parameters(m)
    assert head and backbone


def test_torchvision_model_refuses_too_small_images():
    with pytest.raises(ConfigError, match="at least 63 pixels"):
        create_model("alexnet", num_classes=3, img_size=32)


def test_unknown_name_lists_closest_matches():
    with pytest.raises(UnknownNameError) as err:
        check_model_name("resnt18")
    msg = str(err.value)
    assert "'resnet18'" in msg and "did you mean" in msg and "list_models" in msg
    with pytest.raises(UnknownNameError, match="pixlearn_smallcnn"):
        create_model("pixlearn_smalcnn", num_classes=2)


@pytest.mark.parametrize("kwargs", [{"num_classes": 0}, {"num_classes": 2, "drop_rate": 1.5}, {"num_classes": 2, "img_size": (8,)}])
def test_bad_arguments_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        create_model("pixlearn_smallcnn_tiny", **kwargs)


def test_freeze_and_unfreeze_backbone():
    m = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    backbone, head = split_parameters(m)
    assert [n for n, _ in head] == ["fc.weight", "fc.bias"]
    assert set_backbone_trainable(m, False) == len(backbone)
    assert all(not p.requires_grad for _, p in backbone) and all(p.requires_grad for _, p in head)
    set_backbone_trainable(m, True)
    assert all(p.requires_grad for p in m.parameters())


# ---------------------------------------------------------------- weights files
def test_safetensors_round_trip_with_metadata(tmp_path):
    m = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    path = save_weights(m, tmp_path / "w.safetensors", metadata={"classes": ["a", "b", "c"]})
    fresh = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    report = load_weights(fresh, path, head=("fc",))
    assert report.loaded == len(m.state_dict()) and not report.missing
    for k, v in m.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k])
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_torch_file_loads_with_weights_only_and_new_head_is_kept_fresh(tmp_path):
    src = create_model("pixlearn_smallcnn_tiny", num_classes=10)
    torch.save({"state_dict": {f"model.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "w.ckpt")
    dst = create_model("pixlearn_smallcnn_tiny", num_classes=3, weights=tmp_path / "w.ckpt")  # another number of classes
    assert torch.equal(dst.features[0].stem[0].weight, src.features[0].stem[0].weight)
    assert dst.fc.weight.shape == (3, 32)


class Evil:
    def __reduce__(self):  # would run code when unpickled
        return (print, ("unpickled!",))


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"weight": torch.zeros(2), "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match="weights_only=True"):
        read_state_dict(tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match="unknown weights format"):
        read_state_dict((tmp_path / "w.txt").write_text("x") and tmp_path / "w.txt")
    with pytest.raises(WeightsNotFoundError):
        read_state_dict(tmp_path / "missing.safetensors")


def test_mismatched_weights_say_why(tmp_path):
    save_weights(create_model("pixlearn_smallcnn", num_classes=3), tmp_path / "wide.safetensors")
    with pytest.raises(ShapeError, match="another shape"):
        create_model("pixlearn_smallcnn_tiny", num_classes=3, weights=tmp_path / "wide.safetensors")
    save_weights(nn.Linear(3, 3), tmp_path / "linear.safetensors")
    with pytest.raises(ConfigError, match="another architecture"):
        create_model("pixlearn_smallcnn_tiny", num_classes=3, weights=tmp_path / "linear.safetensors")


def test_strict_loading_needs_exactly_the_models_tensors(tmp_path):
    m = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    state = {k: v for k, v in m.state_dict().items() if not k.startswith("fc.")}
    save_weights(state, tmp_path / "headless.safetensors")
    assert load_weights(m, tmp_path / "headless.safetensors").missing == ["fc.bias", "fc.weight"]
    with pytest.raises(ConfigError, match="exactly this model's tensors"):
        load_weights(m, tmp_path / "headless.safetensors", strict=True)


def test_first_conv_adapts_to_other_input_channels(tmp_path):
    src = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    save_weights(src, tmp_path / "rgb.safetensors")
    grey = create_model("pixlearn_smallcnn_tiny", num_classes=3, in_chans=1, weights=tmp_path / "rgb.safetensors")
    w = src.features[0].stem[0].weight
    assert torch.allclose(grey.features[0].stem[0].weight, w.sum(dim=1, keepdim=True))
    assert get_preprocess(grey).input_size[0] == 1


# ---------------------------------------------------------------- pretrained, offline
@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXLEARN_OFFLINE", "1")
    monkeypatch.setenv("PIXLEARN_CACHE", str(tmp_path / "pixlearn-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.mark.parametrize("name, url", [
    ("resnet10t", "huggingface.co/timm/resnet10t"),
    ("alexnet", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
])
def test_pretrained_offline_names_the_file_and_where_to_put_it(offline, name, url):
    with pytest.raises(WeightsNotFoundError) as err:
        create_model(name, num_classes=3, pretrained=True)
    msg = str(err.value)
    assert url in msg
    assert "--weights PATH" in msg and f"pixlearn weights add FILE --model {name}" in msg
    assert f"{name}.safetensors in {offline / 'pixlearn-cache' / 'weights'}" in msg  # the file name and the folder searched
    assert "offline mode" in msg


def test_pretrained_uses_a_file_placed_in_the_pixlearn_cache(offline):
    src = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    save_weights(src, pixlearn_weights_path("pixlearn_smallcnn_tiny"))
    m = create_model("pixlearn_smallcnn_tiny", num_classes=3, pretrained=True)
    assert torch.equal(m.fc.weight, src.fc.weight)
    with pytest.raises(WeightsNotFoundError, match="no published pretrained weights"):
        create_model("pixlearn_smallcnn", num_classes=3, pretrained=True)
