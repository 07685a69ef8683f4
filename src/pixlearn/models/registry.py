"""One registry and one factory for every classifier: pixlearn's own models, torchvision's, and timm's.

:func:`create_model` builds any of them by name with ``num_classes`` outputs and attaches a
:class:`ModelSpec` (``model.pixlearn_spec``): everything needed to rebuild the same network
without code -- its name, constructor arguments, classifier and first-conv module names, and
the preprocessing it expects (:func:`~pixlearn.models.get_preprocess` reads it back).

Weights: ``pretrained=True`` first looks for a local file named the timm way,
``<model>.<tag>.safetensors`` (timm's default tag when none is given) or ``<model>.safetensors``,
in each folder of ``$PIXLEARN_WEIGHTS`` and then ``<pixlearn cache>/weights``
(:func:`find_pretrained`); such a file is checked strictly against the model (only the
classifier may hold another number of classes) and loaded. Only without one does it go through
timm's or torchvision's own loading path (and their caches: the Hugging Face hub cache,
``$TORCH_HOME/hub``). :func:`add_weights` checks a file and places it under its conventional
name (``pixlearn weights add``); :func:`list_local_weights` lists what is there.
``weights=PATH`` loads a local ``.safetensors`` or torch file (``weights_only=True``).
When weights are not on the machine and cannot be downloaded, :class:`WeightsNotFoundError`
names the file, the folders searched, its URL and how to put it there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError, UnknownNameError
from pixlearn._core.names import closest
from pixlearn._core.paths import hf_cache_dir, offline_mode, torch_hub_dir, weights_dirs
from pixlearn.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from pixlearn.models.weights import (
    WEIGHTS_SUFFIX,
    LocalWeights,
    WeightsMismatchError,
    WeightsNotFoundError,
    describe_error,
    find_local_weights,
    split_name_tag,
    weights_file_names,
)

__all__ = [
    "ModelSpec",
    "TORCHVISION_MODELS",
    "add_weights",
    "build_from_spec",
    "find_pretrained",
    "list_local_weights",
    "check_model_name",
    "create_model",
    "list_models",
    "model_spec",
    "pixlearn_weights_path",
    "register_model",
]

#: torchvision classifiers pixlearn builds itself (everything else by name comes from timm).
TORCHVISION_MODELS: dict[str, dict[str, Any]] = {
    "alexnet": {"head": ("classifier.6",), "first_conv": "features.0", "input_size": (3, 224, 224), "min_size": 63},
    "inception_v3": {"head": ("fc",), "first_conv": "Conv2d_1a_3x3.conv", "input_size": (3, 299, 299), "min_size": 75},
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything that rebuilds a model's architecture (weights live in a ``.safetensors`` file).

    Attributes
    ----------
    name : str
        Registered name (pixlearn, torchvision or timm).
    source : {"pixlearn", "torchvision", "timm"}
    num_classes, in_chans : int
    preprocess : Preprocess
        What the model expects (input size, mean, std, interpolation).
    head : tuple of str
        Module names of the classifier (what a new ``num_classes`` replaces, what stays trainable
        when the backbone is frozen).
    first_conv : str or None
    kwargs : dict
        Further constructor arguments (``drop_rate``, ``drop_path_rate``, ...).

    Examples
    --------
    >>> spec = create_model("pixlearn_smallcnn_tiny", num_classes=4).pixlearn_spec
    >>> ModelSpec.from_dict(spec.to_dict()) == spec
    True
    """

    name: str
    source: str
    num_classes: int
    in_chans: int
    preprocess: Preprocess
    head: tuple[str, ...]
    first_conv: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "preprocess": self.preprocess.to_dict(),
            "head": list(self.head),
            "first_conv": self.first_conv,
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        try:
            return cls(
                name=str(data["name"]),
                source=str(data["source"]),
                num_classes=int(data["num_classes"]),
                in_chans=int(data.get("in_chans", 3)),
                preprocess=Preprocess.from_dict(data["preprocess"]),
                head=tuple(data.get("head") or ()),
                first_conv=data.get("first_conv"),
                kwargs=dict(data.get("kwargs") or {}),
            )
        except KeyError as exc:
            raise ConfigError(f"model spec lacks {exc.args[0]!r}; it needs name, source, num_classes, preprocess") from None


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., Any]
    preprocess: Preprocess
    head: tuple[str, ...]
    first_conv: str | None
    doc: str


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str,
    *,
    input_size: tuple[int, int, int],
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    interpolation: str = "bilinear",
    head: tuple[str, ...] = ("fc",),
    first_conv: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a builder ``fn(num_classes, *, in_chans, drop_rate, drop_path_rate) -> nn.Module`` under ``name``.

    The builder is called lazily by :func:`create_model`; registering does no work.
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY or name in TORCHVISION_MODELS:
            raise ConfigError(f"model name {name!r} is already registered")
        _REGISTRY[name] = _Entry(fn, Preprocess(input_size, mean, std, interpolation), head, first_conv, (fn.__doc__ or "").strip())
        return fn

    return deco


def _small(widths: tuple[int, ...]) -> Callable[..., Any]:
    def build(num_classes: int, *, in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> Any:
        from pixlearn.models.smallcnn import SmallCNN

        return SmallCNN(num_classes, in_chans=in_chans, widths=widths, drop_rate=drop_rate, drop_path_rate=drop_path_rate)

    build.__doc__ = f"Small residual CNN for tiny images (stage widths {widths})."
    return build


for _name, _widths in (
    ("pixlearn_smallcnn", (32, 64, 128)),
    ("pixlearn_smallcnn_tiny", (8, 16, 32)),
    ("pixlearn_smallcnn_wide", (64, 128, 256)),
):
    register_model(_name, input_size=(3, 32, 32), head=("fc",), first_conv="features.0.stem.0")(_small(_widths))


# ---------------------------------------------------------------- names
def _source(name: str) -> str | None:
    if name in _REGISTRY:
        return "pixlearn"
    if name in TORCHVISION_MODELS:
        return "torchvision"
    import timm

    return "timm" if timm.is_model(name) else None


def list_models(pattern: str | None = None) -> list[str]:
    """Every model name :func:`create_model` accepts (pixlearn's, torchvision's, then timm's), optionally filtered.

    ``pattern`` is a shell-style wildcard (``"resnet*"``). Listing imports timm (a few seconds).

    Examples
    --------
    >>> list_models("pixlearn_*")
    ['pixlearn_smallcnn', 'pixlearn_smallcnn_tiny', 'pixlearn_smallcnn_wide']
    """
    import fnmatch

    import timm

    names = sorted(_REGISTRY) + sorted(TORCHVISION_MODELS) + [n for n in timm.list_models() if n not in _REGISTRY]
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def check_model_name(name: str) -> str:
    """Return ``name`` if :func:`create_model` knows it, else raise :class:`UnknownNameError` with the closest names.

    Examples
    --------
    >>> check_model_name("pixlearn_smallcnn")
    'pixlearn_smallcnn'
    >>> check_model_name("pixlearn_smalcnn")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown model 'pixlearn_smalcnn'; did you mean 'pixlearn_smallcnn', ...
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model name must be a non-empty string, got {name!r}")
    if _source(name) is not None:
        return name
    names = list_models()
    hints = closest(name, names, n=5)
    hint = f"; did you mean {', '.join(repr(h) for h in hints)}?" if hints else ""
    raise UnknownNameError(
        f"unknown model {name!r}{hint} pixlearn knows {len(names)} models: its own "
        f"({', '.join(sorted(_REGISTRY))}), torchvision's ({', '.join(TORCHVISION_MODELS)}) and every timm name; "
        "list them with pixlearn.models.list_models('pattern*')"
    )


def model_spec(model: Any) -> ModelSpec:
    """The :class:`ModelSpec` a model from :func:`create_model` carries."""
    spec = getattr(model, "pixlearn_spec", None)
    if not isinstance(spec, ModelSpec):
        raise ConfigError(f"{type(model).__name__} was not built by pixlearn.models.create_model; it carries no spec")
    return spec


def pretrained_tag(name: str) -> str | None:
    """The pretrained tag ``pretrained=True`` means for ``name``: its own (``"resnet18.a1_in1k"``), else
    timm's default tag for that model (``"in1k"`` for ``tf_efficientnet_lite0``); None when there is none.

    Examples
    --------
    >>> pretrained_tag("tf_efficientnet_lite0"), pretrained_tag("resnet18.tv_in1k"), pretrained_tag("pixlearn_smallcnn")
    ('in1k', 'tv_in1k', None)
    """
    arch, tag = split_name_tag(name)
    if tag:
        return tag
    if arch in _REGISTRY or arch in TORCHVISION_MODELS:
        return None
    import timm.models

    try:
        cfg = timm.models.get_pretrained_cfg(arch, allow_unregistered=True)
    except RuntimeError:  # pragma: no cover - timm refuses only unknown tags
        return None
    return (cfg.tag or None) if cfg is not None else None


def _timm_knows(name: str) -> bool:
    """True when timm has a pretrained config for ``name`` (a tag of one's own is not one)."""
    import timm.models

    try:
        return timm.models.get_pretrained_cfg(name, allow_unregistered=False) is not None
    except RuntimeError:
        return False


def find_pretrained(name: str) -> Path | None:
    """The local file ``pretrained=True`` uses for ``name``, or None.

    Each folder of :func:`~pixlearn._core.paths.weights_dirs` in turn (``$PIXLEARN_WEIGHTS``, then
    ``<cache>/weights``); in each, ``<model>.<tag>.safetensors`` for a tagged name, else the default
    tag's file and then ``<model>.safetensors``.
    """
    arch, tag = split_name_tag(name)
    return find_local_weights(arch, tag=tag, default_tag=None if tag else pretrained_tag(arch))


def pixlearn_weights_path(name: str) -> Path:
    """Where a file for ``name`` goes: ``<first weights folder>/<model>[.<tag>].safetensors``.

    The first folder is the first of ``$PIXLEARN_WEIGHTS``, else ``<cache>/weights``.
    """
    arch, tag = split_name_tag(name)
    return weights_dirs()[0] / weights_file_names(arch, tag=tag)[0]


def _looked_for(name: str) -> str:
    arch, tag = split_name_tag(name)
    names = weights_file_names(arch, tag=tag, default_tag=None if tag else pretrained_tag(arch))
    return f"{' or '.join(names)} in {', '.join(str(d) for d in weights_dirs())} (PIXLEARN_WEIGHTS, then the cache)"


def _add_hint(name: str) -> str:
    arch, tag = split_name_tag(name)
    tag = tag or pretrained_tag(arch)
    return f"pixlearn weights add FILE --model {arch}" + (f" --tag {tag}" if tag else "")


def _add_target(name: str) -> Path:
    """Where :func:`_add_hint`'s command puts the file (the default tag's name when there is one)."""
    arch, tag = split_name_tag(name)
    return weights_dirs()[0] / weights_file_names(arch, tag=tag or pretrained_tag(arch))[0]


# ---------------------------------------------------------------- offline handling
def _weights_error(name: str, *, files: list[str], cache: Path, cause: BaseException | None) -> WeightsNotFoundError:
    why = "offline mode is on (PIXLEARN_OFFLINE / HF_HUB_OFFLINE)" if offline_mode() else "the download failed"
    cause_text = f" ({describe_error(cause)})" if cause is not None else ""
    return WeightsNotFoundError(
        f"pretrained weights for model {name!r} are not on this machine and {why}{cause_text}. "
        f"pixlearn looked for {_looked_for(name)}. The published file: {' or '.join(files)}. To use them offline, "
        f"download that file on a machine with network access, then either run `{_add_hint(name)}` (checks it and "
        f"places it as {_add_target(name)}, used by --pretrained), or pass it with --weights PATH "
        f"(Python: weights=PATH), or copy a cache that holds it into {cache}"
    )


@contextlib.contextmanager
def _hf_offline() -> Iterator[None]:
    """Make huggingface_hub fail fast (no retries) while pixlearn's offline mode is on."""
    if not offline_mode():
        yield
        return
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm installs it
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _timm_files(name: str) -> tuple[list[str], Path]:
    import timm.models

    try:
        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
    except RuntimeError:  # a tag timm does not know (weights of one's own)
        cfg = None
    if cfg is None:
        return [f"(timm has no pretrained weights registered for {name!r})"], hf_cache_dir()
    files: list[str] = []
    if cfg.hf_hub_id:
        fname = cfg.hf_hub_filename or "model.safetensors"
        files.append(f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/{fname} (Hugging Face repo {cfg.hf_hub_id})")
        cache = hf_cache_dir()
    else:
        cache = torch_hub_dir() / "checkpoints"
    if cfg.url:
        files.append(cfg.url)
    return files or [f"(no download location for {name!r})"], cache


# ---------------------------------------------------------------- builders
def _build_pixlearn(name: str, *, num_classes: int, in_chans: int, drop_rate: float | None, drop_path_rate: float | None) -> tuple[Any, dict[str, Any]]:
    kwargs = {"drop_rate": float(drop_rate or 0.0), "drop_path_rate": float(drop_path_rate or 0.0)}
    return _REGISTRY[name].builder(num_classes, in_chans=in_chans, **kwargs), kwargs


def _build_timm(
    name: str, *, num_classes: int, in_chans: int, drop_rate: float | None, drop_path_rate: float | None,
    img_size: tuple[int, int] | None, pretrained: bool, kwargs: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    import timm

    kw: dict[str, Any] = dict(kwargs or {})
    if kwargs is None:
        if drop_rate is not None:
            kw["drop_rate"] = float(drop_rate)
        if drop_path_rate:
            kw["drop_path_rate"] = float(drop_path_rate)
        if img_size is not None:
            cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
            if cfg is not None and cfg.fixed_input_size:
                kw["img_size"] = tuple(img_size)
    try:
        if not pretrained:
            return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw), kw
        # build first without weights so that a bad argument is reported as such, not as a download failure
        timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw)
    except TypeError as exc:
        raise ConfigError(f"timm model {name!r} does not take these options {sorted(kw)}: {exc}") from None
    files, cache = _timm_files(name)
    try:
        with _hf_offline():
            return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_chans, **kw), kw
    except Exception as exc:  # any failure to fetch or read the weights file
        raise _weights_error(name, files=files, cache=cache, cause=exc) from exc


def _replace_torchvision_head(model: Any, name: str, num_classes: int) -> None:
    from torch import nn

    if name == "alexnet":
        old = model.classifier[6]
        model.classifier[6] = nn.Linear(old.in_features, num_classes)
    else:
        model.fc = nn.Linear(model.fc.in_features, num_classes)


def _torchvision_in_chans(model: Any, name: str, in_chans: int) -> None:
    import torch
    from torch import nn

    from pixlearn.models.weights import _adapt_input_conv

    conv = model.features[0] if name == "alexnet" else model.Conv2d_1a_3x3.conv
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(_adapt_input_conv(conv.weight, in_chans))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    if name == "alexnet":
        model.features[0] = new
    else:
        model.Conv2d_1a_3x3.conv = new


def _build_torchvision(
    name: str, *, num_classes: int, in_chans: int, drop_rate: float | None, pretrained: bool, kwargs: dict[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    import warnings

    from torchvision import models as tvm

    kw: dict[str, Any] = dict(kwargs or {})
    if kwargs is None:
        if drop_rate is not None:
            kw["dropout"] = float(drop_rate)
        if name == "inception_v3":
            kw["aux_logits"] = False
            kw["transform_input"] = bool(pretrained)
    build_kw = dict(kw)
    if name == "inception_v3":
        build_kw.setdefault("init_weights", not pretrained)
    if not pretrained:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = tvm.get_model(name, weights=None, num_classes=num_classes, **build_kw)
    else:
        weights = tvm.get_model_weights(name).DEFAULT
        fname = os.path.basename(weights.url)
        cache = torch_hub_dir() / "checkpoints"
        if offline_mode() and not (cache / fname).is_file():
            raise _weights_error(name, files=[weights.url], cache=cache, cause=None)
        build_kw.pop("init_weights", None)
        try:
            model = tvm.get_model(name, weights=weights, progress=False, **build_kw)
        except Exception as exc:
            raise _weights_error(name, files=[weights.url], cache=cache, cause=exc) from exc
        _replace_torchvision_head(model, name, num_classes)
    if in_chans != 3:
        _torchvision_in_chans(model, name, in_chans)
    return model, kw


def _default_preprocess(name: str, source: str, model: Any) -> Preprocess:
    if source == "pixlearn":
        return _REGISTRY[name].preprocess
    if source == "torchvision":
        return Preprocess(TORCHVISION_MODELS[name]["input_size"], IMAGENET_MEAN, IMAGENET_STD, "bilinear")
    from pixlearn.models.preprocess import _from_timm_cfg

    return _from_timm_cfg(getattr(model, "pretrained_cfg", {}) or {})


def _head_and_conv(name: str, source: str, model: Any) -> tuple[tuple[str, ...], str | None]:
    if source == "pixlearn":
        return _REGISTRY[name].head, _REGISTRY[name].first_conv
    if source == "torchvision":
        return TORCHVISION_MODELS[name]["head"], TORCHVISION_MODELS[name]["first_conv"]
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    head = cfg.get("classifier") or "head"
    conv = cfg.get("first_conv")
    return (head,) if isinstance(head, str) else tuple(head), (conv if isinstance(conv, str) else (conv[0] if conv else None))


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def _check_rate(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def create_model(
    name: str,
    *,
    num_classes: int,
    pretrained: bool = False,
    weights: str | os.PathLike[str] | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    in_chans: int = 3,
    img_size: int | tuple[int, int] | None = None,
) -> Any:
    """Build a classifier by name with ``num_classes`` outputs.

    Parameters
    ----------
    name : str
        ``pixlearn_smallcnn`` (``_tiny``, ``_wide``) for tiny images, ``alexnet`` or
        ``inception_v3`` (torchvision), or any timm name (``resnet18``, ``efficientnet_b0``,
        ``mobilenetv3_small_100``, ``convnext_tiny``, ``vit_tiny_patch16_224``, ...).
    num_classes : int
        Outputs of the classifier.
    pretrained : bool, default False
        Start from the published weights: a local file found by :func:`find_pretrained`
        (``$PIXLEARN_WEIGHTS``, then ``<cache>/weights``; checked strictly) first, else timm's or
        torchvision's loading path. Downloads only when asked and allowed. A timm name may carry
        a tag (``"tf_efficientnet_lite0.in1k"``).
    weights : path, optional
        Start from a local ``.safetensors`` or torch (``weights_only=True``) file instead; its
        classifier is dropped when its number of classes differs.
    drop_rate : float, optional
        Dropout before the classifier (default: the model's own).
    drop_path_rate : float, optional
        Stochastic depth (models with residual blocks).
    in_chans : int, default 3
    img_size : int or (height, width), optional
        The input size the model will see; recorded in its preprocessing (and passed to models
        with a fixed input size, such as ViT).

    Returns
    -------
    torch.nn.Module
        Carries ``pixlearn_spec`` (:class:`ModelSpec`); :func:`~pixlearn.models.get_preprocess`
        reads its preprocessing back.

    Raises
    ------
    UnknownNameError
        Unknown ``name``; the message lists the closest names.
    WeightsNotFoundError
        ``pretrained=True`` but the weights are neither local nor downloadable; the message names
        the file names and folders searched, its URL, and how to add it.
    WeightsMismatchError
        A local pretrained file does not hold exactly this model's tensors.
    ConfigError, ShapeError
        Bad arguments, or a weights file that does not fit the model.

    Examples
    --------
    >>> import torch
    >>> m = create_model("pixlearn_smallcnn", num_classes=10, img_size=16)
    >>> m(torch.zeros(2, 3, 16, 16)).shape, m.pixlearn_spec.preprocess.input_size
    (torch.Size([2, 10]), (3, 16, 16))
    """
    name = check_model_name(name)
    num_classes = _check_int(num_classes, "num_classes", 1)
    in_chans = _check_int(in_chans, "in_chans", 1)
    drop_rate = _check_rate(drop_rate, "drop_rate")
    drop_path_rate = _check_rate(drop_path_rate, "drop_path_rate")
    size: tuple[int, int] | None = None
    if img_size is not None:
        size = (img_size, img_size) if isinstance(img_size, int) and not isinstance(img_size, bool) else tuple(img_size)  # type: ignore[assignment]
        if len(size) != 2 or not all(isinstance(v, int) and v >= 1 for v in size):
            raise ConfigError(f"img_size must be a positive int or an (height, width) pair, got {img_size!r}")
    source = _source(name)
    assert source is not None  # check_model_name guarantees it
    if source == "torchvision" and size is not None and min(size) < TORCHVISION_MODELS[name]["min_size"]:
        raise ConfigError(
            f"{name} needs images of at least {TORCHVISION_MODELS[name]['min_size']} pixels a side, got img_size={size}; "
            "use a larger --img-size or a model for small images (pixlearn_smallcnn)"
        )
    local = find_pretrained(name) if pretrained and weights is None else None
    load_published = pretrained and weights is None and local is None
    if source == "pixlearn":
        if load_published:
            raise WeightsNotFoundError(
                f"{name} has no published pretrained weights and none are in the local weights folders (pixlearn looked "
                f"for {_looked_for(name)}); train it from scratch (drop --pretrained), pass --weights PATH, or add "
                f"a file with `{_add_hint(name)}`"
            )
        model, kw = _build_pixlearn(name, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, drop_path_rate=drop_path_rate)
    elif source == "torchvision":
        if drop_path_rate:
            raise ConfigError(f"{name} has no residual blocks; drop_path_rate must be 0 (use drop_rate)")
        model, kw = _build_torchvision(name, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, pretrained=load_published)
    else:
        if split_name_tag(name)[1] and not _timm_knows(name):
            if load_published:  # a tag of one's own: only a local file can serve it
                files, cache = _timm_files(name)
                raise _weights_error(name, files=files, cache=cache, cause=None)
            name = split_name_tag(name)[0]
        model, kw = _build_timm(
            name, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
            img_size=size, pretrained=load_published,
        )
    head, first_conv = _head_and_conv(name, source, model)
    if local is not None:
        load_local_pretrained(model, local, model_name=name, head=head, first_conv=first_conv)
    elif weights is not None:
        from pixlearn.models.weights import load_weights

        load_weights(model, weights, head=head, first_conv=first_conv)
    preprocess = _default_preprocess(name, source, model)
    if in_chans != preprocess.input_size[0]:
        mean = (sum(preprocess.mean) / len(preprocess.mean),) * in_chans
        std = (sum(preprocess.std) / len(preprocess.std),) * in_chans
        preprocess = replace(preprocess, input_size=(in_chans,) + preprocess.input_size[1:], mean=mean, std=std)
    if size is not None:
        preprocess = preprocess.with_size(size)
    model.pixlearn_spec = ModelSpec(name, source, num_classes, in_chans, preprocess, head, first_conv, kw)
    return model


def build_from_spec(spec: ModelSpec | Mapping[str, Any]) -> Any:
    """Rebuild a model's architecture (fresh weights, nothing downloaded) from its :class:`ModelSpec`.

    Examples
    --------
    >>> m = create_model("pixlearn_smallcnn_tiny", num_classes=3, drop_rate=0.2)
    >>> build_from_spec(m.pixlearn_spec.to_dict()).pixlearn_spec == m.pixlearn_spec
    True
    """
    if not isinstance(spec, ModelSpec):
        spec = ModelSpec.from_dict(spec)
    if spec.source == "smp":  # segmentation networks: pixlearn.models.segmentation
        from pixlearn.models.segmentation import build_segmentation_model

        return build_segmentation_model(spec)
    name = check_model_name(spec.name)
    source = _source(name)
    if source != spec.source:
        raise ConfigError(f"model {name!r} now comes from {source}, but the spec says {spec.source}")
    kw = dict(spec.kwargs)
    if source == "pixlearn":
        model = _REGISTRY[name].builder(spec.num_classes, in_chans=spec.in_chans, **kw)
    elif source == "torchvision":
        model, _ = _build_torchvision(name, num_classes=spec.num_classes, in_chans=spec.in_chans, drop_rate=None, pretrained=False, kwargs=kw)
    else:
        model, _ = _build_timm(
            name, num_classes=spec.num_classes, in_chans=spec.in_chans, drop_rate=None, drop_path_rate=None,
            img_size=None, pretrained=False, kwargs=kw,
        )
    model.pixlearn_spec = spec
    return model


# ---------------------------------------------------------------- local pretrained weights
def load_local_pretrained(
    model: Any, path: Path, *, model_name: str, head: tuple[str, ...] = (), first_conv: str | None = None
) -> None:
    """Load a local pretrained file into ``model`` after the strict check (:func:`check_weights_fit`):
    only the classifier may hold another number of classes (it is then left fresh) and the first
    convolution another number of input channels (it is then adapted)."""
    from pixlearn.models.weights import check_weights_fit, load_weights, read_state_dict

    state = read_state_dict(path)
    check_weights_fit(model.state_dict(), state, model_name=model_name, path=path, head=head, first_conv=first_conv)
    load_weights(model, state, head=head, first_conv=first_conv)


def _reference_classes(name: str, source: str, state: Mapping[str, Any]) -> int:
    """The class count a pretrained file for ``name`` is checked at: timm's for a tag it knows (1000 for
    ImageNet), torchvision's 1000, else the rows of the file's classifier."""
    if source == "torchvision":
        return 1000
    if source == "timm" and _timm_knows(name):
        import timm.models

        cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True)
        if cfg is not None and cfg.num_classes:
            return int(cfg.num_classes)
    if source == "pixlearn":
        heads = _REGISTRY[name].head
    else:
        import timm.models

        cfg = timm.models.get_pretrained_cfg(split_name_tag(name)[0], allow_unregistered=True)
        classifier = (cfg.classifier if cfg is not None else None) or "head"
        heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    for h in heads:
        weight = state.get(f"{h}.weight")
        if weight is not None and getattr(weight, "ndim", 0) >= 1:
            return int(weight.shape[0])
    return 1000


_TAG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def check_weights_file(path: str | os.PathLike[str], model: str) -> dict[str, Any]:
    """Check that a ``.safetensors`` file holds exactly the tensors of ``model`` built at its pretrained class count.

    The model is built from random weights (nothing downloads), the file checked with
    :func:`~pixlearn.models.weights.check_weights_fit` with no allowance, then loaded with
    ``load_state_dict(strict=True)``.

    Returns
    -------
    dict
        ``model``, ``num_classes`` (the class count checked), ``tensors``, ``parameters``.

    Raises
    ------
    WeightsNotFoundError, ConfigError
        No such file, or not a ``.safetensors`` file.
    UnknownNameError
        Unknown model (with the closest names).
    WeightsMismatchError
        The file does not fit the model: the first offending keys and what the file seems to be for.
    """
    from pixlearn.models.weights import check_weights_fit, read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: no such weights file")
    if path.suffix.lower() != WEIGHTS_SUFFIX:
        from pixlearn.models.weights import _TORCH_SUFFIXES

        fix = (
            "convert it first: safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors'), "
            "or use it as is with --weights PATH"
            if path.suffix.lower() in _TORCH_SUFFIXES else "give the model's .safetensors weights file"
        )
        raise ConfigError(
            f"{path}: local pretrained weights are .safetensors files (pixlearn never unpickles a file it keeps), "
            f"this is a {path.suffix or 'file without an extension'}; {fix}"
        )
    name = check_model_name(model)
    source = _source(name)
    assert source is not None
    state = read_state_dict(path)
    build_name = name if source != "timm" or _timm_knows(name) else split_name_tag(name)[0]
    classes = _reference_classes(name, source, state)
    net = create_model(build_name, num_classes=classes)
    check_weights_fit(net.state_dict(), state, model_name=name, path=path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # pragma: no cover - the check above names every key first
        raise WeightsMismatchError(f"{path} does not fit model {name!r}: {str(exc).splitlines()[0]}") from None
    return {
        "model": name,
        "num_classes": classes,
        "tensors": len(state),
        "parameters": int(sum(v.numel() for v in state.values() if v.is_floating_point())),
        "warning": _other_model_named(path, name),
    }


def _other_model_named(path: Path, name: str) -> str:
    """A warning when the file's metadata or its own name names another model with the same tensors
    (``tf_efficientnet_lite0`` and ``efficientnet_lite0`` differ only in their padding)."""
    from pixlearn.models.weights import read_weights_metadata

    arch = split_name_tag(name)[0]
    said = (read_weights_metadata(path).get("model") or "").split()
    named = said[-1] if said else ""
    if not named and path.name.endswith(WEIGHTS_SUFFIX):
        named = split_name_tag(path.name[: -len(WEIGHTS_SUFFIX)])[0]
        if _safe_source(named) is None:
            named = ""
    named = split_name_tag(named)[0]
    if named and named != arch:
        return (f"the file says it is for {named!r}, not {arch!r}; their tensors have the same names and shapes, "
                "but the networks may compute differently (padding, activations): check --model")
    return ""


def _safe_source(name: str) -> str | None:
    try:
        return _source(name)
    except Exception:  # noqa: BLE001 - any name timm cannot parse
        return None


def add_weights(
    path: str | os.PathLike[str],
    model: str,
    *,
    tag: str | None = None,
    force: bool = False,
    folder: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Check a ``.safetensors`` file against ``model`` and copy it into a local weights folder.

    The copy is named the timm way, ``<model>.<tag>.safetensors`` or ``<model>.safetensors``, so
    that ``pretrained=True`` (``--pretrained``) finds it. The tag comes from ``tag``, else from
    ``model`` (``"tf_efficientnet_lite0.in1k"``), else from the file's own name when that is
    ``<model>.<tag>.safetensors``. The copy is written atomically; the source is only read.

    Parameters
    ----------
    path : path
        The ``.safetensors`` file.
    model : str
        The model it is for (any name :func:`create_model` takes; timm names may carry a tag).
    tag : str, optional
        Letters, digits, ``_`` and ``-``.
    force : bool, default False
        Replace a different file already there under that name.
    folder : path, optional
        Where to put it (default: the first of :func:`~pixlearn._core.paths.weights_dirs`).

    Returns
    -------
    dict
        ``model``, ``tag``, ``path`` (the copy), ``status`` (``added``, ``replaced`` or ``already there``),
        ``sha256``, ``size`` and what :func:`check_weights_file` reports.

    Raises
    ------
    WeightsMismatchError
        The file does not fit the model (nothing is written).
    ConfigError
        A different file is already there and ``force`` is False; a bad tag.
    """
    import shutil
    import uuid

    src = Path(path)
    arch, name_tag = split_name_tag(model) if isinstance(model, str) else (model, None)
    if tag is not None and name_tag is not None and tag != name_tag:
        raise ConfigError(f"the model name {model!r} carries the tag {name_tag!r} but --tag says {tag!r}; give one of them")
    tag = tag or name_tag
    if tag is None and src.name.endswith(WEIGHTS_SUFFIX):
        file_arch, file_tag = split_name_tag(src.name[: -len(WEIGHTS_SUFFIX)])
        if file_arch == arch and file_tag:
            tag = file_tag
    if tag is not None and (not tag or not set(tag) <= _TAG_CHARS):
        raise ConfigError(f"tag {tag!r} must be letters, digits, '_' or '-' (like timm's in1k, a1_in1k), e.g. --tag in1k")
    full = f"{arch}.{tag}" if tag else arch
    report = check_weights_file(src, full)
    dest_dir = Path(folder) if folder is not None else weights_dirs()[0]
    dest = dest_dir / weights_file_names(arch, tag=tag)[0]
    entry = LocalWeights(src, arch, tag, src.stat().st_size)
    digest = entry.sha256()
    status = "added"
    if dest.exists():
        same_file = dest.resolve() == src.resolve()
        if same_file or LocalWeights(dest, arch, tag, dest.stat().st_size).sha256() == digest:
            return {**report, "tag": tag, "path": str(dest), "status": "already there", "sha256": digest, "size": entry.size}
        if not force:
            raise ConfigError(
                f"{dest} already holds other weights for {full!r}; pass --force (Python: force=True) to replace them, "
                "or give this file another --tag"
            )
        status = "replaced"
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest_dir / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {**report, "tag": tag, "path": str(dest), "status": status, "sha256": digest, "size": entry.size}


def list_local_weights(*, checksum: bool = True) -> list[dict[str, Any]]:
    """Every ``.safetensors`` file in the local weights folders, with the model names it serves.

    A file serves ``<model>.<tag>`` and, when it is what ``pretrained=True`` picks for the bare
    name, ``<model>`` too (and ``tu-<model>`` as a segmentation encoder for timm models). A file
    that another folder's file hides serves nothing (``shadowed_by`` names that one).

    Returns
    -------
    list of dict
        ``model``, ``tag``, ``size``, ``sha256`` (the first 12 hex digits; empty with
        ``checksum=False``), ``folder``, ``file``, ``serves`` (list of names), ``shadowed_by``.
    """
    from pixlearn.models.weights import scan_weights_dirs

    rows: list[dict[str, Any]] = []
    for item in scan_weights_dirs():
        known = _safe_source(item.model)
        serves: list[str] = []
        shadowed_by = None
        if known is not None:
            candidates = [item.name] + ([item.model] if item.tag else [])
            for cand in candidates:
                hit = find_pretrained(cand)
                if hit == item.path:
                    serves.append(cand)
                elif cand == item.name and hit is not None:
                    shadowed_by = str(hit)
            if item.model in serves and known == "timm":
                serves.append(f"tu-{item.model}")
        rows.append({
            "model": item.model,
            "tag": item.tag or "",
            "size": item.size,
            "sha256": item.sha256()[:12] if checksum else "",
            "folder": str(item.folder),
            "file": item.path.name,
            "serves": serves if known is not None else [],
            "shadowed_by": shadowed_by or ("" if known is not None else "(unknown model name)"),
        })
    return rows
