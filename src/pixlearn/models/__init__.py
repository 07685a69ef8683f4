"""Neural network modules and the model registry (imports only _core and torch).

``create_model(name, num_classes=...)`` builds pixlearn's small CNNs, torchvision's AlexNet and
Inception v3, or any timm model; every model carries its preprocessing (``get_preprocess``) and
a spec that rebuilds it (``build_from_spec``); weights are saved as safetensors.
Importing this package is cheap: the submodules load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "create_model": "registry",
    "list_models": "registry",
    "check_model_name": "registry",
    "register_model": "registry",
    "build_from_spec": "registry",
    "model_spec": "registry",
    "pixlearn_weights_path": "registry",
    "find_pretrained": "registry",
    "add_weights": "registry",
    "check_weights_file": "registry",
    "list_local_weights": "registry",
    "WeightsMismatchError": "weights",
    "ModelSpec": "registry",
    "TORCHVISION_MODELS": "registry",
    "Preprocess": "preprocess",
    "get_preprocess": "preprocess",
    "save_weights": "weights",
    "load_weights": "weights",
    "read_state_dict": "weights",
    "read_weights_metadata": "weights",
    "LoadReport": "weights",
    "WeightsNotFoundError": "weights",
    "split_parameters": "freeze",
    "set_backbone_trainable": "freeze",
    "backbone_norm_eval": "freeze",
    "head_names": "freeze",
    "SmallCNN": "smallcnn",
    "create_segmentation_model": "segmentation",
    "build_segmentation_model": "segmentation",
    "list_segmentation_archs": "segmentation",
    "segmentation_divisor": "segmentation",
    "create_restorer": "restoration",
    "build_restorer": "restoration",
    "list_restorers": "restoration",
    "RestorerSpec": "restoration",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pixlearn.models' has no attribute {name!r}")
    value = getattr(import_module(f"pixlearn.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
