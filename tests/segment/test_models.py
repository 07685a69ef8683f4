"""Segmentation networks from segmentation-models-pytorch: every architecture, specs that rebuild them, offline weights."""

from __future__ import annotations

import pytest
import torch

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn.models import build_from_spec, create_segmentation_model, load_weights, save_weights, segmentation_divisor

ENC = "tu-test_efficientnet"


@pytest.mark.parametrize("arch", ["unet", "unet++", "fpn", "deeplabv3plus"])
def test_every_architecture_maps_images_to_logits_and_rebuilds_from_its_spec(arch):
    m = create_segmentation_model(arch, encoder=ENC, num_classes=3, img_size=32).eval()
    with torch.no_grad():
        y = m(torch.rand(2, 3, 32, 64))
    assert y.shape == (2, 3, 32, 64)
    spec = m.pixlearn_spec
    assert spec.source == "smp" and spec.kwargs["encoder_name"] == ENC and spec.preprocess.img_size == (32, 32)
    rebuilt = build_from_spec(spec.to_dict())  # what a run folder's model.json does
    load_weights(rebuilt, m.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(torch.ones(1, 3, 32, 32)), m(torch.ones(1, 3, 32, 32)), atol=1e-5)


def test_the_full_resolution_path_sees_the_input_at_every_pixel_and_rebuilds_from_its_spec():
    from pixlearn.models.segmentation import FullResolutionDecoder

    torch.manual_seed(0)
    m = create_segmentation_model("unet", encoder=ENC, num_classes=2, img_size=32, full_res=True).eval()
    assert isinstance(m.decoder, FullResolutionDecoder) and m.pixlearn_spec.kwargs["full_res"] is True
    x = torch.rand(1, 3, 32, 32)

    def decoded_with_input_pixel_changed(model):  # the encoder's deeper features fixed, only its stride-1 "feature" (the input) changed
        with torch.no_grad():
            feats = model.encoder(x)
            moved = [feats[0].clone(), *feats[1:]]
            moved[0][..., 10, 10] += 1.0
            return model.decoder(feats), model.decoder(moved)

    out, moved = decoded_with_input_pixel_changed(m)
    assert not torch.allclose(out[..., 10, 10], moved[..., 10, 10]) and torch.allclose(out[..., 20, 20], moved[..., 20, 20])
    with torch.no_grad():
        y = m(x)
    assert y.shape == (1, 2, 32, 32)
    rebuilt = build_from_spec(m.pixlearn_spec.to_dict())
    load_weights(rebuilt, m.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), y, atol=1e-5)
    plain = create_segmentation_model("unet", encoder=ENC, num_classes=2, img_size=32)
    assert "full_res" not in plain.pixlearn_spec.kwargs and not isinstance(plain.decoder, FullResolutionDecoder)
    out, moved = decoded_with_input_pixel_changed(plain.eval())
    assert torch.equal(out, moved)  # smp's U-Net never looks at the input itself
    with pytest.raises(ConfigError, match="full_res is a U-Net option"):
        create_segmentation_model("fpn", encoder=ENC, num_classes=2, img_size=32, full_res=True)


def test_smp_encoder_names_and_divisor():
    m = create_segmentation_model("unet", encoder="resnet18", num_classes=1, img_size=64, decoder_channels=[8, 8, 8, 8, 8])
    assert segmentation_divisor(m) == 32 and m.pixlearn_spec.num_classes == 1
    assert segmentation_divisor(create_segmentation_model("deeplabv3+", encoder=ENC, num_classes=2, img_size=32)) == 16


def test_unknown_names_suggest_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'unet'"):
        create_segmentation_model("unte", encoder=ENC, num_classes=2)
    with pytest.raises(UnknownNameError, match="tu-resnet18"):
        create_segmentation_model("unet", encoder="tu-resnet81", num_classes=2)
    with pytest.raises(UnknownNameError, match="tu-"):
        create_segmentation_model("unet", encoder="not_an_encoder", num_classes=2)


def test_sizes_the_network_cannot_take_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="multiples of 32; use 64"):
        create_segmentation_model("unet", encoder=ENC, num_classes=2, img_size=48)
    with pytest.raises(ConfigError, match="fpn takes no decoder_channels"):
        create_segmentation_model("fpn", encoder=ENC, num_classes=2, decoder_channels=[8] * 5)


def test_encoder_weights_load_from_a_local_file(tmp_path):
    import timm

    src = timm.create_model("test_efficientnet", pretrained=False)
    path = save_weights(src, tmp_path / "enc.safetensors")
    m = create_segmentation_model("unet", encoder=ENC, num_classes=2, img_size=32, encoder_weights=path)
    stem = dict(m.encoder.model.named_parameters())["conv_stem.weight"]
    assert torch.equal(stem, src.conv_stem.weight)
    whole = create_segmentation_model("fpn", encoder=ENC, num_classes=3, img_size=32)
    p2 = save_weights(whole, tmp_path / "fpn.safetensors")
    again = create_segmentation_model("fpn", encoder=ENC, num_classes=5, img_size=32, weights=p2)  # the last layer stays fresh
    assert torch.equal(dict(again.named_parameters())["decoder.seg_blocks.0.block.0.block.0.weight"],
                       dict(whole.named_parameters())["decoder.seg_blocks.0.block.0.block.0.weight"])
