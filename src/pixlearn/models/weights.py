"""Model weights on disk: safetensors out, safetensors or ``torch.load(weights_only=True)`` in.

Nothing here ever unpickles arbitrary objects: ``.pt``/``.pth``/``.bin``/``.ckpt`` files are read
with ``weights_only=True`` and refused (with the reason) when they need more than tensors and
plain containers.

Local pretrained weights follow timm's names: ``<model>.<tag>.safetensors``
(``tf_efficientnet_lite0.in1k.safetensors``) or ``<model>.safetensors``, in the folders of
:func:`pixlearn._core.paths.weights_dirs` (``$PIXLEARN_WEIGHTS``, then ``<cache>/weights``);
:func:`find_local_weights` looks them up, :func:`scan_weights_dirs` lists them and
:func:`check_weights_fit` is the strict check every such file passes before it is used.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixlearn._core.errors import ConfigError, ShapeError, WeightsNotFoundError
from pixlearn._core.paths import WEIGHTS_SUFFIX, find_local_weights, weights_dirs, weights_file_names

__all__ = [
    "WeightsNotFoundError",
    "LoadReport",
    "read_state_dict",
    "load_weights",
    "save_weights",
    "read_weights_metadata",
    "WeightsMismatchError",
    "LocalWeights",
    "split_name_tag",
    "weights_file_names",
    "find_local_weights",
    "scan_weights_dirs",
    "check_weights_fit",
    "WEIGHTS_SUFFIX",
]


_SAFE_SUFFIXES = (".safetensors",)
_TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar")
_WRAPPERS = ("state_dict", "model", "model_state_dict", "module", "net")
_PREFIXES = ("module.", "model.", "task.model.", "_orig_mod.", "net.")


class WeightsMismatchError(ConfigError):
    """A weights file does not hold exactly the tensors (names and shapes) of the model it is meant for."""


@dataclass
class LoadReport:
    """What :func:`load_weights` did: tensors loaded, and keys it left out and why."""

    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    skipped_head: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` file, or a torch file with ``weights_only=True``.

    Wrappers such as ``{"state_dict": ...}`` (Lightning checkpoints) or ``{"model": ...}`` are
    unwrapped; non-tensor entries are dropped.

    Raises
    ------
    WeightsNotFoundError
        The file does not exist.
    ConfigError
        The file is not a weights file, or a torch file needs unpickling beyond tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: no such weights file; give a .safetensors (or .pt/.pth) file")
    suffix = path.suffix.lower()
    if suffix in _SAFE_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable safetensors file ({exc})") from None
    if suffix not in _TORCH_SUFFIXES:
        raise ConfigError(
            f"{path}: unknown weights format {suffix or '(no extension)'}; expected .safetensors, or "
            f"{', '.join(_TORCH_SUFFIXES)} read with torch.load(weights_only=True)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncated zips: all mean "not loadable safely"
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{path}: refused to load with torch.load(weights_only=True): {msg}. pixlearn never unpickles "
            "arbitrary objects; re-save the file as a plain state dict or as .safetensors"
        ) from None
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ConfigError(f"{path}: holds no tensors")
    return state


def read_weights_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata stored in a ``.safetensors`` header (empty for other files)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def save_weights(model: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a model's (or a state dict's) tensors to a ``.safetensors`` file, atomically.

    ``metadata`` values that are not strings are stored as JSON. Shared tensors are saved once
    per key (each key gets its own contiguous copy).

    Examples
    --------
    >>> import tempfile
    >>> p = save_weights(nn.Linear(2, 3), Path(tempfile.mkdtemp()) / "w.safetensors", metadata={"n": 3})
    >>> sorted(read_state_dict(p)), read_weights_metadata(p)["n"]
    (['bias', 'weight'], '3')
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ConfigError(f"{path}: weights are saved as .safetensors; use that extension")
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
    meta = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        save_file(tensors, str(tmp), metadata=meta or None)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _best_prefix_map(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip or add a common wrapper prefix so that the most keys match the model's."""
    candidates = [dict(state)]
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state):
            candidates.append({k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()})
        if any(k.startswith(prefix) for k in target):
            candidates.append({prefix + k: v for k, v in state.items()})
    return max(candidates, key=lambda c: len(set(c) & set(target)))


def _adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Fit a first-conv weight (O, I, kh, kw) to ``in_chans`` input channels (timm's rule)."""
    have = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // have)
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (have / in_chans)


def load_weights(
    model: nn.Module,
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    head: tuple[str, ...] = (),
    first_conv: str | None = None,
    strict: bool = False,
) -> LoadReport:
    """Load weights into ``model`` from a file or a state dict, adapting what can be adapted.

    Wrapper prefixes (``module.``, ``model.``) are matched automatically. Classifier tensors
    (under the ``head`` module names) whose shape differs -- another number of classes -- are
    left at their fresh initialisation; a first convolution with another number of input
    channels is adapted (summed or repeated). Any other shape mismatch is an error.

    Parameters
    ----------
    model : nn.Module
    source : path or mapping
        ``.safetensors`` or a torch file (read with ``weights_only=True``), or a state dict.
    head : tuple of str
        Module names of the classifier (e.g. ``("fc",)``).
    first_conv : str, optional
        Module name of the first convolution.
    strict : bool, default False
        Require every tensor of the model, and only those, in the file (rebuilding a saved model).

    Returns
    -------
    LoadReport

    Raises
    ------
    ShapeError
        A backbone tensor has another shape than the model's.
    ConfigError
        Nothing in the file matches the model (another architecture).
    """
    state = read_state_dict(source) if not isinstance(source, Mapping) else dict(source)
    where = f"{source}" if not isinstance(source, Mapping) else "the state dict"
    own = model.state_dict()
    state = _best_prefix_map(state, own)
    matched = set(state) & set(own)
    if not matched:
        sample = ", ".join(sorted(state)[:3])
        raise ConfigError(
            f"{where}: none of its {len(state)} tensors ({sample}, ...) match {type(model).__name__}'s parameters; "
            "these weights belong to another architecture (check --model)"
        )
    report = LoadReport(loaded=0)

    def in_head(key: str) -> bool:
        return any(key == h or key.startswith(h + ".") for h in head)

    to_load: dict[str, torch.Tensor] = {}
    bad: list[str] = []
    for key in sorted(matched):
        value, want = state[key], own[key]
        if value.shape == want.shape:
            to_load[key] = value.to(want.dtype)
        elif in_head(key):
            report.skipped_head.append(key)
        elif first_conv and key == f"{first_conv}.weight" and value.ndim == 4 and value.shape[0] == want.shape[0] and value.shape[2:] == want.shape[2:]:
            to_load[key] = _adapt_input_conv(value, want.shape[1]).to(want.dtype)
            report.adapted.append(key)
        else:
            bad.append(f"{key}: file {tuple(value.shape)} vs model {tuple(want.shape)}")
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ShapeError(
            f"{where}: {len(bad)} tensor(s) have another shape than the model's: {'; '.join(bad[:3])}{more}; "
            "the weights were made for another variant of this model"
        )
    missing = set(own) - set(to_load)
    report.missing = sorted(k for k in missing if not in_head(k) or k not in report.skipped_head)
    report.unexpected = sorted(set(state) - set(own))
    try:
        model.load_state_dict(to_load, strict=False)
    except RuntimeError as exc:  # pragma: no cover - shapes were checked above
        raise ShapeError(f"{where}: {exc}") from None
    report.loaded = len(to_load)
    if strict and (report.missing or report.unexpected or report.skipped_head or report.adapted):
        problems = report.missing[:3] + report.unexpected[:3] + report.skipped_head[:3]
        raise ConfigError(
            f"{where}: does not hold exactly this model's tensors (missing {len(report.missing)}, unexpected "
            f"{len(report.unexpected)}, e.g. {', '.join(problems)}); the file and the model description disagree"
        )
    backbone_missing = [k for k in report.missing if not in_head(k) and not k.endswith("num_batches_tracked")]
    if backbone_missing and len(backbone_missing) > len(to_load):
        raise ConfigError(
            f"{where}: only {len(to_load)} of the model's {len(own)} tensors were found in the file "
            f"(missing e.g. {', '.join(backbone_missing[:3])}); these weights belong to another architecture"
        )
    return report


def describe_error(exc: BaseException) -> str:
    """One line naming an exception (for wrapped download errors)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ---------------------------------------------------------------- local pretrained weights (timm's names)
def split_name_tag(name: str) -> tuple[str, str | None]:
    """``"tf_efficientnet_lite0.in1k"`` -> ``("tf_efficientnet_lite0", "in1k")``; no tag -> ``(name, None)``.

    Examples
    --------
    >>> split_name_tag("tf_efficientnet_lite0.in1k"), split_name_tag("resnet18")
    (('tf_efficientnet_lite0', 'in1k'), ('resnet18', None))
    """
    model, _, tag = name.partition(".")
    return model, (tag or None)




@dataclass(frozen=True)
class LocalWeights:
    """One file in a local weights folder."""

    path: Path
    model: str
    tag: str | None
    size: int

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        """The model name that asks for exactly this file (``model.tag`` or ``model``)."""
        return f"{self.model}.{self.tag}" if self.tag else self.model

    def sha256(self) -> str:
        import hashlib

        digest = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


def scan_weights_dirs(dirs: list[Path] | None = None) -> list[LocalWeights]:
    """Every ``*.safetensors`` file in the local weights folders (folder order, then by name).

    Examples
    --------
    >>> scan_weights_dirs([Path("/no/such/folder")])
    []
    """
    found: list[LocalWeights] = []
    for folder in weights_dirs() if dirs is None else dirs:
        try:
            entries = sorted(folder.iterdir())
        except OSError:  # missing or unreadable folder: nothing there
            continue
        for path in entries:
            if path.name.startswith(".") or not path.name.endswith(WEIGHTS_SUFFIX) or not path.is_file():
                continue
            model, tag = split_name_tag(path.name[: -len(WEIGHTS_SUFFIX)])
            found.append(LocalWeights(path, model, tag, path.stat().st_size))
    return found


_FAMILIES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"conv_stem", "blocks"}), "an EfficientNet / MobileNet-family network (timm keys conv_stem, blocks.*)"),
    (frozenset({"patch_embed", "blocks"}), "a vision transformer (patch_embed, blocks.*)"),
    (frozenset({"conv1", "layer1"}), "a ResNet-family network (conv1, layer1.*)"),
    (frozenset({"stem", "stages"}), "a ConvNeXt / RegNet-style network (stem, stages.*)"),
    (frozenset({"encoder", "decoder"}), "a whole segmentation network (encoder, decoder), not a backbone"),
    (frozenset({"features", "classifier"}), "a torchvision-style network (features, classifier)"),
)


def _describe_file(state: Mapping[str, torch.Tensor], path: Path | None) -> str:
    """What a weights file seems to be for: its metadata or name, else its keys' family and size."""
    meta = read_weights_metadata(path) if path is not None else {}
    said = (meta.get("model") or meta.get("architecture") or "").replace("timm ", "").strip()
    params = sum(v.numel() for v in state.values() if v.is_floating_point())
    classes = next(
        (v.shape[0] for k, v in state.items() if v.ndim == 2 and k.rsplit(".", 1)[-1] == "weight"
         and any(p in k for p in ("fc", "classifier", "head"))),
        None,
    )
    size = f"{len(state)} tensors, {params / 1e6:.2f} M parameters" + (f", a {classes}-class classifier" if classes else "")
    if said:
        return f"{said} (its metadata; {size})"
    tops = {k.split(".", 1)[0] for k in state}
    family = next((text for keys, text in _FAMILIES if keys <= tops), None)
    if family is None:
        family = f"a network with top-level modules {', '.join(sorted(tops)[:5])}"
    return f"{family}; {size}"


def check_weights_fit(
    model_state: Mapping[str, torch.Tensor],
    state: Mapping[str, torch.Tensor],
    *,
    model_name: str,
    path: Path | None = None,
    head: tuple[str, ...] = (),
    first_conv: str | None = None,
) -> None:
    """Check that ``state`` holds exactly the tensors of ``model_state`` (names and shapes), or raise.

    Only two differences are allowed, the ones transfer learning makes on purpose: tensors under
    the ``head`` modules may differ in their first dimension (another number of classes), and
    ``<first_conv>.weight`` in its second (another number of input channels). BatchNorm's
    ``num_batches_tracked`` counters may be absent.

    Raises
    ------
    WeightsMismatchError
        Naming the first few missing, unexpected and mis-shaped keys, and what the file seems to
        be for (its metadata, or its keys' family, tensor and parameter counts).

    Examples
    --------
    >>> from torch import nn
    >>> check_weights_fit(nn.Linear(2, 3).state_dict(), nn.Linear(2, 3).state_dict(), model_name="linear")
    >>> check_weights_fit(nn.Linear(2, 3).state_dict(), nn.Linear(2, 4).state_dict(), model_name="linear")
    Traceback (most recent call last):
    ...
    pixlearn.models.weights.WeightsMismatchError: the state dict does not fit model 'linear': 2 tensor(s) with another shape (bias: file (4,) vs model (3,); weight: file (4, 2) vs model (3, 2)). The file seems to be for ...
    """
    where = str(path) if path is not None else "the state dict"

    def in_head(key: str) -> bool:
        return any(key == h or key.startswith(h + ".") for h in head)

    missing = sorted(k for k in model_state if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in model_state)
    shaped: list[str] = []
    for key in sorted(set(state) & set(model_state)):
        have, want = tuple(state[key].shape), tuple(model_state[key].shape)
        if have == want:
            continue
        if in_head(key) and len(have) == len(want) and have[1:] == want[1:]:
            continue
        if first_conv and key == f"{first_conv}.weight" and len(have) == len(want) == 4 and have[0] == want[0] and have[2:] == want[2:]:
            continue
        shaped.append(f"{key}: file {have} vs model {want}")
    if not (missing or unexpected or shaped):
        return
    parts = []
    for label, keys in (("missing from the file", missing), ("not in the model", unexpected), ("with another shape", shaped)):
        if keys:
            more = f", +{len(keys) - 3} more" if len(keys) > 3 else ""
            parts.append(f"{len(keys)} tensor(s) {label} ({'; '.join(keys[:3])}{more})")
    hint = ""
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state) and {k[len(prefix):] for k in state} >= set(missing):
            hint = f" Its keys carry the prefix {prefix!r} (a training wrapper's): save the inner model's state dict."
            break
    raise WeightsMismatchError(
        f"{where} does not fit model {model_name!r}: {', '.join(parts)}. The file seems to be for "
        f"{_describe_file(state, path)}.{hint} Give the file made for {model_name!r}, or name the model the file "
        "was made for (--model)"
    )
