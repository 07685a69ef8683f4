"""Semantic segmentation networks from segmentation-models-pytorch on any timm or smp encoder.

:func:`create_segmentation_model` builds U-Net, U-Net++, FPN or DeepLabV3+ with ``num_classes``
output channels (1 for a binary, sigmoid model) on a timm encoder (``"tu-resnet18"``,
``"tu-mobilenetv3_small_100"``: any timm name after ``tu-``) or one of smp's own encoders
(``"resnet18"``). Nothing downloads: encoders start from random weights unless a local weights
file is given (``encoder_weights=PATH`` for the encoder alone, ``weights=PATH`` for a whole
network saved by pixlearn). The model carries a :class:`~pixlearn.models.ModelSpec` with
``source="smp"``, so :func:`~pixlearn.models.build_from_spec` rebuilds it from a run folder's
``weights/model.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.names import closest
from pixlearn.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = [
    "SEGMENTATION_ARCHS",
    "build_segmentation_model",
    "check_arch",
    "check_encoder",
    "create_segmentation_model",
    "list_segmentation_archs",
    "segmentation_divisor",
]

#: pixlearn's architecture names -> segmentation-models-pytorch class names.
SEGMENTATION_ARCHS: dict[str, str] = {
    "unet": "Unet",
    "unetplusplus": "UnetPlusPlus",
    "fpn": "FPN",
    "deeplabv3plus": "DeepLabV3Plus",
}
_ALIASES = {"unet++": "unetplusplus", "deeplabv3+": "deeplabv3plus", "deeplab": "deeplabv3plus"}
#: Module names outside the encoder: the part trained at the full learning rate when fine-tuning.
HEAD = ("decoder", "segmentation_head")
SOURCE = "smp"


def list_segmentation_archs() -> list[str]:
    """The architecture names :func:`create_segmentation_model` accepts.

    Examples
    --------
    >>> list_segmentation_archs()
    ['deeplabv3plus', 'fpn', 'unet', 'unetplusplus']
    """
    return sorted(SEGMENTATION_ARCHS)


def check_arch(arch: str) -> str:
    """The canonical name of ``arch`` (case, ``-``/``_`` and aliases such as ``unet++`` forgiven).

    Examples
    --------
    >>> check_arch("UNet++"), check_arch("DeepLabV3Plus")
    ('unetplusplus', 'deeplabv3plus')
    >>> check_arch("unte")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown segmentation architecture 'unte'; did you mean 'unet'? Choices: deeplabv3plus, fpn, unet, unetplusplus
    """
    if not isinstance(arch, str) or not arch:
        raise ConfigError(f"arch must be a non-empty string, got {arch!r}")
    key = arch.lower().replace("-", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key in SEGMENTATION_ARCHS:
        return key
    hint = closest(key, list(SEGMENTATION_ARCHS) + list(_ALIASES), n=1)
    hint_text = f"; did you mean '{_ALIASES.get(hint[0], hint[0])}'?" if hint else ""
    raise UnknownNameError(f"unknown segmentation architecture {arch!r}{hint_text} Choices: {', '.join(list_segmentation_archs())}")


def _smp_encoders() -> list[str]:
    import segmentation_models_pytorch as smp

    return list(smp.encoders.get_encoder_names())


def check_encoder(encoder: str) -> str:
    """Return ``encoder`` if smp can build it: ``tu-<any timm name>`` or one of smp's own encoder names.

    Raises
    ------
    UnknownNameError
        With the closest names (timm's for ``tu-`` names).

    Examples
    --------
    >>> check_encoder("tu-resnet18")
    'tu-resnet18'
    >>> check_encoder("tu-resnet81")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown timm encoder 'resnet81' (from 'tu-resnet81'); did you mean 'tu-resnet18', ...
    """
    if not isinstance(encoder, str) or not encoder:
        raise ConfigError(f"encoder must be a non-empty string, got {encoder!r}")
    if encoder.startswith("tu-"):
        import timm

        name = encoder[3:]
        if timm.is_model(name):
            return encoder
        hints = closest(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(repr('tu-' + h) for h in hints)}?" if hints else ""
        raise UnknownNameError(f"unknown timm encoder {name!r} (from {encoder!r}){hint} Any timm model name works after 'tu-'")
    names = _smp_encoders()
    if encoder in names:
        return encoder
    import timm

    hints = closest(encoder, names, n=3)
    if timm.is_model(encoder):
        hints = [f"tu-{encoder}"] + hints
    hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise UnknownNameError(
        f"unknown encoder {encoder!r}{hint} Use 'tu-<timm name>' (e.g. tu-resnet18, tu-mobilenetv3_small_100) "
        "or one of segmentation-models-pytorch's encoders (smp.encoders.get_encoder_names())"
    )


def _encoder_stats(encoder: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the encoder's published weights expect (ImageNet's when unknown)."""
    if encoder.startswith("tu-"):
        import timm.models

        cfg = timm.models.get_pretrained_cfg(encoder[3:], allow_unregistered=True)
        if cfg is not None and cfg.mean and cfg.std and len(cfg.mean) == 3:
            return tuple(cfg.mean), tuple(cfg.std)
    return IMAGENET_MEAN, IMAGENET_STD


def segmentation_divisor(model: nn.Module) -> int:
    """The number an input's height and width must be divisible by (the encoder's output stride).

    Examples
    --------
    >>> segmentation_divisor(create_segmentation_model("unet", encoder="tu-resnet18", num_classes=2))
    32
    """
    encoder = getattr(model, "encoder", None)
    stride = getattr(encoder, "output_stride", None)
    if isinstance(stride, int) and stride > 0:
        return stride
    spec = getattr(model, "pixlearn_spec", None)
    depth = int((getattr(spec, "kwargs", None) or {}).get("encoder_depth", 5))
    return 2**depth


def _build(arch: str, num_classes: int, in_chans: int, kwargs: dict[str, Any]) -> nn.Module:
    import segmentation_models_pytorch as smp

    cls = getattr(smp, SEGMENTATION_ARCHS[arch])
    try:
        return cls(encoder_weights=None, in_channels=in_chans, classes=num_classes, **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot build {arch} with {kwargs}: {exc}") from None


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _load_encoder(model: nn.Module, path: str | os.PathLike[str], encoder: str, in_chans: int) -> Any:
    from pixlearn.models.weights import load_weights

    target = model.encoder.model if encoder.startswith("tu-") and hasattr(model.encoder, "model") else model.encoder
    first = next((n for n, m in target.named_modules() if isinstance(m, nn.Conv2d)), None)
    return load_weights(target, path, head=("fc", "classifier", "head", "last_linear"), first_conv=first if in_chans != 3 else None)


def create_segmentation_model(
    arch: str = "unet",
    *,
    encoder: str = "tu-resnet18",
    num_classes: int,
    in_chans: int = 3,
    img_size: int | tuple[int, int] | None = None,
    encoder_depth: int = 5,
    decoder_channels: int | Sequence[int] | None = None,
    encoder_weights: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Build a segmentation network: (N, in_chans, H, W) images -> (N, num_classes, H, W) logits.

    Parameters
    ----------
    arch : {"unet", "unetplusplus", "fpn", "deeplabv3plus"}, default "unet"
        Also ``"unet++"`` and ``"deeplabv3+"``.
    encoder : str, default "tu-resnet18"
        ``tu-<timm name>`` (any timm model with feature maps) or an smp encoder name.
    num_classes : int
        Output channels: the number of classes, or 1 for a binary (sigmoid) model.
    in_chans : int, default 3
    img_size : int or (height, width), optional
        The training size, recorded in the preprocessing (must be divisible by the output stride).
    encoder_depth : int, default 5
        Encoder stages (3..5); the input must be divisible by ``2 ** encoder_depth``.
    decoder_channels : int or sequence of int, optional
        smp's ``decoder_channels`` (one per stage for U-Net / U-Net++, one int for DeepLabV3+).
    encoder_weights : path, optional
        A local weights file for the encoder (e.g. timm's ``resnet18`` ``.safetensors``); its
        classifier is ignored. Without it the encoder starts from random weights: nothing downloads.
    weights : path, optional
        A whole network's weights (e.g. a pixlearn run's ``best.safetensors``); the last layer is
        left fresh when its number of classes differs.

    Returns
    -------
    torch.nn.Module
        An smp model carrying ``pixlearn_spec`` (``source="smp"``).

    Raises
    ------
    UnknownNameError
        Unknown ``arch`` or ``encoder`` (with the closest names).
    ConfigError
        Bad options, or an ``img_size`` the network cannot take.

    Examples
    --------
    >>> import torch
    >>> m = create_segmentation_model("unet", encoder="tu-resnet18", num_classes=3, img_size=64)
    >>> m(torch.zeros(1, 3, 64, 64)).shape, m.pixlearn_spec.source, m.pixlearn_spec.name
    (torch.Size([1, 3, 64, 64]), 'smp', 'unet')
    """
    from pixlearn.models.registry import ModelSpec

    arch = check_arch(arch)
    encoder = check_encoder(encoder)
    num_classes = _check_int(num_classes, "num_classes", 1)
    in_chans = _check_int(in_chans, "in_chans", 1)
    encoder_depth = _check_int(encoder_depth, "encoder_depth", 1)
    if not 3 <= encoder_depth <= 5:
        raise ConfigError(f"encoder_depth must be 3, 4 or 5, got {encoder_depth}")
    kwargs: dict[str, Any] = {"encoder_name": encoder, "encoder_depth": encoder_depth}
    if decoder_channels is not None:
        if arch == "fpn":
            raise ConfigError("fpn takes no decoder_channels (its pyramid has a fixed width); drop the option")
        if arch == "deeplabv3plus":
            kwargs["decoder_channels"] = _check_int(decoder_channels, "decoder_channels", 1)
        else:
            chans = [decoder_channels] * encoder_depth if isinstance(decoder_channels, int) else list(decoder_channels)
            if len(chans) != encoder_depth or not all(isinstance(c, int) and c > 0 for c in chans):
                raise ConfigError(f"decoder_channels needs {encoder_depth} positive ints (one per stage), got {decoder_channels!r}")
            kwargs["decoder_channels"] = chans
    if arch == "deeplabv3plus" and encoder_depth != 5:
        raise ConfigError("deeplabv3plus needs encoder_depth=5")
    model = _build(arch, num_classes, in_chans, kwargs)
    divisor = segmentation_divisor(model)
    mean, std = _encoder_stats(encoder)
    if in_chans != 3:
        mean, std = (sum(mean) / 3,) * in_chans, (sum(std) / 3,) * in_chans
    size = img_size if img_size is not None else 256
    pre = Preprocess((in_chans, 256, 256), mean, std, "bilinear").with_size(size)
    h, w = pre.img_size
    if h % divisor or w % divisor:
        raise ConfigError(
            f"img_size {h}x{w} does not fit {arch} on {encoder}: heights and widths must be multiples of {divisor}; "
            f"use {-(-h // divisor) * divisor}"
        )
    model.pixlearn_spec = ModelSpec(arch, SOURCE, num_classes, in_chans, pre, HEAD, None, kwargs)
    if encoder_weights is not None:
        _load_encoder(model, Path(encoder_weights), encoder, in_chans)
    if weights is not None:
        from pixlearn.models.weights import load_weights

        load_weights(model, Path(weights), head=("segmentation_head",))
    return model


def build_segmentation_model(spec: Any) -> nn.Module:
    """Rebuild a network from its :class:`~pixlearn.models.ModelSpec` (fresh weights, nothing downloaded).

    Examples
    --------
    >>> m = create_segmentation_model("fpn", encoder="tu-resnet18", num_classes=1, img_size=64)
    >>> build_segmentation_model(m.pixlearn_spec.to_dict()).pixlearn_spec == m.pixlearn_spec
    True
    """
    from pixlearn.models.registry import ModelSpec

    if not isinstance(spec, ModelSpec):
        spec = ModelSpec.from_dict(spec)
    if spec.source != SOURCE:
        raise ConfigError(f"model spec {spec.name!r} comes from {spec.source}, not {SOURCE}")
    arch = check_arch(spec.name)
    kwargs = dict(spec.kwargs)
    if "encoder_name" not in kwargs:
        raise ConfigError(f"segmentation model spec {spec.name!r} lacks kwargs.encoder_name")
    check_encoder(kwargs["encoder_name"])
    model = _build(arch, spec.num_classes, spec.in_chans, kwargs)
    model.pixlearn_spec = spec
    return model
