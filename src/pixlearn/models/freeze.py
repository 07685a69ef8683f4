"""Split a model into backbone and classifier head; freeze and unfreeze the backbone."""

from __future__ import annotations

from torch import nn

from pixlearn._core.errors import ConfigError

__all__ = ["head_names", "split_parameters", "set_backbone_trainable", "backbone_norm_eval"]


def head_names(model: nn.Module) -> tuple[str, ...]:
    """Module names of the classifier head (from the model's spec, else timm's ``pretrained_cfg``)."""
    spec = getattr(model, "pixlearn_spec", None)
    if spec is not None:
        return tuple(spec.head)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    head = cfg.get("classifier")
    if head:
        return (head,) if isinstance(head, str) else tuple(head)
    raise ConfigError(f"{type(model).__name__}: cannot tell its classifier head; build it with pixlearn.models.create_model")


def _in_head(name: str, heads: tuple[str, ...]) -> bool:
    return any(name == h or name.startswith(h + ".") for h in heads)


def split_parameters(model: nn.Module) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """``(backbone, head)`` lists of ``(name, parameter)``.

    Examples
    --------
    >>> from pixlearn.models import create_model
    >>> backbone, head = split_parameters(create_model("pixlearn_smallcnn_tiny", num_classes=3))
    >>> [n for n, _ in head]
    ['fc.weight', 'fc.bias']
    """
    heads = head_names(model)
    backbone: list[tuple[str, nn.Parameter]] = []
    head: list[tuple[str, nn.Parameter]] = []
    for name, p in model.named_parameters():
        (head if _in_head(name, heads) else backbone).append((name, p))
    if not head:
        raise ConfigError(f"{type(model).__name__}: no parameters under its head {heads}")
    return backbone, head


def set_backbone_trainable(model: nn.Module, trainable: bool) -> int:
    """Freeze (``False``) or unfreeze (``True``) every parameter outside the head; returns how many changed.

    Examples
    --------
    >>> from pixlearn.models import create_model
    >>> m = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    >>> _ = set_backbone_trainable(m, False)
    >>> sum(p.numel() for p in m.parameters() if p.requires_grad)
    99
    """
    backbone, _ = split_parameters(model)
    changed = 0
    for _, p in backbone:
        if p.requires_grad != trainable:
            p.requires_grad_(trainable)
            changed += 1
    return changed


def backbone_norm_eval(model: nn.Module) -> None:
    """Put the backbone's normalisation layers in eval mode (frozen running statistics)."""
    heads = head_names(model)
    for name, m in model.named_modules():
        if name and not _in_head(name, heads) and isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
