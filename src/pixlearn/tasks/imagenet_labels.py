"""A general image labeller: timm's ``tf_efficientnet_lite0`` with its ImageNet-1k weights, from the local weights folders.

Nothing downloads. The weights are the file ``tf_efficientnet_lite0.in1k.safetensors`` (or
``tf_efficientnet_lite0.safetensors``) in a folder of :func:`pixlearn._core.paths.weights_dirs`
(``$PIXLEARN_WEIGHTS``, then ``<cache>/weights``), put there with
``pixlearn weights add FILE --model tf_efficientnet_lite0``; the file must hold exactly the model's
1000-class tensors. The class names are timm's ImageNet-1k descriptions (``"espresso"``,
``"tabby, tabby cat"``), the preprocessing timm's evaluation transform for the model (resize to
256 px bicubic, centre crop 224, mean = std = 0.5).

:func:`get_labeller` loads the network once per weights file and caches it (thread-safe); when the
file is not there it raises :class:`LabellerUnavailable`, whose message says how to add it.
:func:`label_image` is the one-call API.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pixlearn._core.errors import ConfigError, ShapeError, WeightsNotFoundError
from pixlearn._core.paths import find_local_weights

__all__ = [
    "LABELLER_MODEL",
    "LABELLER_TAG",
    "LABELLER_NAME",
    "ADD_COMMAND",
    "LabellerUnavailable",
    "ImageNetLabeller",
    "find_labeller_weights",
    "get_labeller",
    "label_image",
]

#: The timm model and pretrained tag of the general labeller.
LABELLER_MODEL = "tf_efficientnet_lite0"
LABELLER_TAG = "in1k"
LABELLER_NAME = f"{LABELLER_MODEL}.{LABELLER_TAG}"
#: How a user makes the labeller available (the shared file, or the one from timm's hub page).
ADD_COMMAND = f"pixlearn weights add {LABELLER_NAME}.safetensors --model {LABELLER_MODEL}"
_NUM_CLASSES = 1000


class LabellerUnavailable(WeightsNotFoundError):
    """The general labeller's weights are not in any local weights folder."""


def find_labeller_weights(dirs: list[Path] | None = None) -> Path | None:
    """The local weights file of the labeller (``tf_efficientnet_lite0.in1k.safetensors``, else
    ``tf_efficientnet_lite0.safetensors``), or None. Only looks at files: cheap, imports nothing.

    Examples
    --------
    >>> find_labeller_weights(dirs=[Path("/no/such/folder")]) is None
    True
    """
    return find_local_weights(LABELLER_MODEL, default_tag=LABELLER_TAG, dirs=dirs)


def _unavailable_message() -> str:
    from pixlearn._core.paths import weights_dirs

    folders = ", ".join(str(d) for d in weights_dirs())
    return (f"no general labeller: the ImageNet weights of {LABELLER_MODEL} ({LABELLER_NAME}.safetensors) are not in "
            f"the weights folders ({folders}); add them with `{ADD_COMMAND}` (or set PIXLEARN_WEIGHTS to a folder "
            "holding that file)")


def _as_rgb_uint8(image: Any) -> np.ndarray:
    """An (H, W, 3) uint8 array from an (H, W), (H, W, 1|3|4) array (uint8, uint16, or float/bool in [0, 1])."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise ShapeError(f"label_image needs an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}; "
                         "read files with pixlearn.io.read_image")
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        return (arr // 257).astype(np.uint8)
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.floating):
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise ConfigError("label_image: the image holds NaN or infinite values; give finite pixels in [0, 1]")
        return np.rint(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    raise ConfigError(f"label_image: unsupported pixel type {arr.dtype}; give uint8, uint16, or floats in [0, 1]")


class ImageNetLabeller:
    """``tf_efficientnet_lite0`` with ImageNet-1k weights: an image in, the top ImageNet classes out.

    Parameters
    ----------
    path : path
        The weights file; checked strictly (every tensor of the 1000-class model, and only those).

    Raises
    ------
    WeightsNotFoundError
        No such file.
    WeightsMismatchError
        The file is not the 1000-class ``tf_efficientnet_lite0`` (another model, or a fine-tuned head).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import torch
        from timm.data import ImageNetInfo, create_transform, resolve_data_config

        from pixlearn.models import create_model
        from pixlearn.models.weights import check_weights_fit, read_state_dict

        self.path = Path(path)
        state = read_state_dict(self.path)
        model = create_model(LABELLER_MODEL, num_classes=_NUM_CLASSES)
        check_weights_fit(model.state_dict(), state, model_name=LABELLER_NAME, path=self.path)
        model.load_state_dict(state, strict=True)
        self.model = model.eval()
        self.config = resolve_data_config(model=model)  # timm's pretrained config: 224 px, bicubic, 0.5/0.5
        self.transform = create_transform(**self.config)
        info = ImageNetInfo()
        self.classes = [info.index_to_description(i) for i in range(info.num_classes())]
        self._torch = torch

    @property
    def name(self) -> str:
        return LABELLER_NAME

    def __call__(self, image: Any, top_k: int = 5) -> list[dict[str, Any]]:
        return self.label(image, top_k=top_k)

    def label(self, image: Any, top_k: int = 5) -> list[dict[str, Any]]:
        """The ``top_k`` ImageNet classes of one image, best first: ``[{"label", "score"}]`` (softmax probabilities)."""
        from PIL import Image

        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= _NUM_CLASSES:
            raise ConfigError(f"top_k={top_k!r} is out of range; use an integer in 1..{_NUM_CLASSES}")
        torch = self._torch
        x = self.transform(Image.fromarray(_as_rgb_uint8(image), "RGB")).unsqueeze(0)
        with torch.inference_mode():
            probs = self.model(x).float().softmax(dim=-1)[0]
        scores, idx = probs.topk(int(top_k))
        return [{"label": self.classes[int(i)], "score": float(s)} for s, i in zip(scores, idx)]


_lock = threading.Lock()
_cached: tuple[tuple[str, int, int], ImageNetLabeller] | None = None
_failed: tuple[tuple[str, int, int], Exception] | None = None


def get_labeller() -> ImageNetLabeller:
    """The labeller of the weights file found now, built once per file and cached (thread-safe).

    Looked up at every call (a few file checks), so a file added with ``pixlearn weights add``
    while a service runs is used from the next call; a file that fails its check is not retried
    until it changes.

    Raises
    ------
    LabellerUnavailable
        No weights file in the local weights folders; the message says how to add it.
    WeightsMismatchError, ConfigError
        The file found is not the ImageNet ``tf_efficientnet_lite0``.
    """
    global _cached, _failed
    path = find_labeller_weights()
    if path is None:
        raise LabellerUnavailable(_unavailable_message())
    try:
        st = path.stat()
    except OSError:
        raise LabellerUnavailable(_unavailable_message()) from None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        if _failed is not None and _failed[0] == key:
            raise _failed[1]
        try:
            labeller = ImageNetLabeller(path)
        except ConfigError as exc:
            _failed = (key, exc)
            raise
        _cached, _failed = (key, labeller), None
        return labeller


def label_image(image: Any, top_k: int = 5) -> list[dict[str, Any]]:
    """The ``top_k`` ImageNet classes of ``image``, best first: ``[{"label": "espresso", "score": 0.95}, ...]``.

    Parameters
    ----------
    image : numpy array, or path
        (H, W, 3) RGB (or grey, or RGBA) uint8, uint16 or floats in [0, 1]; a path is read with
        :func:`pixlearn.io.read_image`.
    top_k : int, default 5

    Raises
    ------
    LabellerUnavailable
        The ImageNet weights are not in the local weights folders (the message gives the command that adds them).
    """
    if isinstance(image, (str, os.PathLike)):
        from pixlearn.io import read_image

        image = read_image(image)
    return get_labeller().label(image, top_k=top_k)
