"""Semantic segmentation networks from segmentation-models-pytorch on any timm or smp encoder.

:func:`create_segmentation_model` builds U-Net, U-Net++, FPN or DeepLabV3+ with ``num_classes``
output channels (1 for a binary, sigmoid model) on a timm encoder (``"tu-resnet18"``,
``"tu-mobilenetv3_small_100"``: any timm name after ``tu-``) or one of smp's own encoders
(``"resnet18"``). Nothing downloads: encoders start from random weights unless local weights
are asked for: ``pretrained=True`` takes a ``tu-`` encoder's timm weights from the local weights
folders (``pixlearn weights add``; :func:`~pixlearn.models.find_pretrained`),
``encoder_weights=PATH`` from a file, ``weights=PATH`` a whole network saved by pixlearn. A
``tu-`` encoder's file is the timm classifier's: its classifier (and the layers the feature
extractor does not use) are dropped, every tensor of the encoder must be there with its shape. The model carries a :class:`~pixlearn.models.ModelSpec` with
``source="smp"``, so :func:`~pixlearn.models.build_from_spec` rebuilds it from a run folder's
``weights/model.json``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.names import closest
from pixlearn.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess

__all__ = [
    "FullResolutionDecoder",
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


class FullResolutionDecoder(nn.Module):
    """smp's U-Net decoder with a full-resolution path: its output is fused with features of the input image itself.

    smp's U-Net drops the encoder's stride-1 "skip" (the input), so the last decoder block only upsamples
    stride-2 features; thin structures (cell membranes a few pixels wide) lose their exact borders. This adds
    a 3x3 conv-BN-ReLU on the (normalised) input and one more 3x3 conv-BN-ReLU over both, at the decoder's
    last width, before the segmentation head: about 10 k multiply-adds a pixel for the default 16 channels.
    """

    def __init__(self, decoder: nn.Module, *, in_chans: int, channels: int) -> None:
        super().__init__()
        self.inner = decoder
        self.stem = nn.Sequential(nn.Conv2d(in_chans, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        out = self.inner(features)
        return self.fuse(torch.cat([out, self.stem(features[0])], dim=1))


def _build(arch: str, num_classes: int, in_chans: int, kwargs: dict[str, Any]) -> nn.Module:
    import segmentation_models_pytorch as smp

    kwargs = dict(kwargs)
    full_res = bool(kwargs.pop("full_res", False))
    cls = getattr(smp, SEGMENTATION_ARCHS[arch])
    try:
        model = cls(encoder_weights=None, in_channels=in_chans, classes=num_classes, **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot build {arch} with {kwargs}: {exc}") from None
    if full_res:
        channels = int(model.segmentation_head[0].in_channels)
        model.decoder = FullResolutionDecoder(model.decoder, in_chans=in_chans, channels=channels)
    return model


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _timm_encoder_state(path: Path, timm_name: str) -> dict[str, Any]:
    """The file's tensors after the strict check against the whole timm classifier ``timm_name``
    (only its classifier may hold another number of classes)."""
    import timm

    from pixlearn.models.registry import _head_and_conv, _timm_knows
    from pixlearn.models.weights import check_weights_fit, read_state_dict, split_name_tag

    state = read_state_dict(path)
    build = timm_name if _timm_knows(timm_name) else split_name_tag(timm_name)[0]
    full = timm.create_model(build, pretrained=False)
    head, _ = _head_and_conv(build, "timm", full)
    check_weights_fit(full.state_dict(), state, model_name=timm_name, path=path, head=head)
    return state


def _file_key(key: str, state: Any) -> str | None:
    """The file's key for an encoder key: the same, or with the first part unflattened (timm's
    feature wrapper names ``stages.0`` as ``stages_0``)."""
    if key in state:
        return key
    first, _, rest = key.partition(".")
    for i, ch in enumerate(first):
        if ch == "_":
            cand = f"{first[:i]}.{first[i + 1:]}" + (f".{rest}" if rest else "")
            if cand in state:
                return cand
    return None


def _load_encoder(model: nn.Module, path: str | os.PathLike[str], encoder: str, in_chans: int) -> Any:
    from pixlearn.models.weights import WeightsMismatchError, load_weights

    path = Path(path)
    if not encoder.startswith("tu-") or not hasattr(model.encoder, "model") or path.suffix.lower() != ".safetensors":
        target = model.encoder.model if encoder.startswith("tu-") and hasattr(model.encoder, "model") else model.encoder
        first = next((n for n, m in target.named_modules() if isinstance(m, nn.Conv2d)), None)
        return load_weights(target, path, head=("fc", "classifier", "head", "last_linear"), first_conv=first if in_chans != 3 else None)
    state = _timm_encoder_state(path, encoder[3:])
    target = model.encoder.model
    own = target.state_dict()
    first = next((n for n, m in target.named_modules() if isinstance(m, nn.Conv2d)), None)
    mapped: dict[str, Any] = {}
    bad: list[str] = []
    for key, want in own.items():
        src = _file_key(key, state)
        if src is None:
            if not key.endswith("num_batches_tracked"):
                bad.append(f"{key}: not in the file")
            continue
        have = state[src]
        adapt = in_chans != 3 and first is not None and key == f"{first}.weight"
        if tuple(have.shape) != tuple(want.shape) and not adapt:
            bad.append(f"{key}: file {tuple(have.shape)} vs encoder {tuple(want.shape)}")
        mapped[key] = have
    if bad:
        more = f", +{len(bad) - 3} more" if len(bad) > 3 else ""
        raise WeightsMismatchError(
            f"{path}: {len(bad)} tensor(s) of the {encoder} encoder do not fit ({'; '.join(bad[:3])}{more}); "
            f"the file is {encoder[3:]}'s, but the encoder was built with other options"
        )
    return load_weights(target, mapped, first_conv=first if in_chans != 3 else None)


def _pretrained_encoder_file(encoder: str) -> Path:
    from pixlearn.models.registry import _add_hint, _looked_for, find_pretrained
    from pixlearn.models.weights import WeightsNotFoundError

    if not encoder.startswith("tu-"):
        raise ConfigError(
            f"pretrained=True takes a tu-<timm name> encoder's weights from the local weights folders; {encoder!r} is one "
            f"of smp's own encoders: use tu-{encoder} if timm has it, or give encoder_weights=PATH (--encoder-weights)"
        )
    name = encoder[3:]
    found = find_pretrained(name)
    if found is None:
        raise WeightsNotFoundError(
            f"pretrained weights for the encoder {encoder!r} are not on this machine (segmentation never downloads): "
            f"pixlearn looked for {_looked_for(name)}. Get timm's {name} .safetensors file, then run "
            f"`{_add_hint(name)}`, or give encoder_weights=PATH (--encoder-weights PATH)"
        )
    return found


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
    pretrained: bool = False,
    full_res: bool = False,
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
        For a ``tu-`` encoder and a ``.safetensors`` file the check is strict: the file must be that
        timm model's (only the classifier may differ) and hold every tensor of the encoder.
    weights : path, optional
        A whole network's weights (e.g. a pixlearn run's ``best.safetensors``); the last layer is
        left fresh when its number of classes differs.
    pretrained : bool, default False
        Start a ``tu-<name>`` encoder from the local file that ``create_model(name, pretrained=True)``
        would use (``$PIXLEARN_WEIGHTS``, then ``<cache>/weights``; see ``pixlearn weights add``),
        loaded as ``encoder_weights``. Nothing downloads.
    full_res : bool, default False
        U-Net only: add a full-resolution path from the input to the decoder's output
        (:class:`FullResolutionDecoder`), which smp's U-Net lacks.

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
    WeightsNotFoundError
        ``pretrained=True`` and no local file for the encoder (the message names the file names and
        folders searched, and ``pixlearn weights add``).
    WeightsMismatchError
        An encoder file that is not the encoder's timm model's.

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
    if full_res:
        if arch != "unet":
            raise ConfigError(f"full_res is a U-Net option; {arch} does not take it (use arch unet, or drop full_res)")
        kwargs["full_res"] = True
    if arch == "deeplabv3plus" and encoder_depth != 5:
        raise ConfigError("deeplabv3plus needs encoder_depth=5")
    if pretrained and encoder_weights is not None:
        raise ConfigError("give either pretrained=True (the local weights folders) or encoder_weights=PATH, not both")
    if pretrained:
        encoder_weights = _pretrained_encoder_file(encoder)
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
