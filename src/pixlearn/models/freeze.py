"""Split a model into backbone and classifier head; freeze and unfreeze the backbone."""

from __future__ import annotations

from torch import nn

from pixlearn._core.errors import ConfigError

__all__ = ["head_names", "split_parameters", "set_backbone_trainable", "backbone_norm_eval", "init_head", "backbone_depths"]


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


def init_head(model: nn.Module, *, std: float = 0.0) -> int:
    """Re-initialise the head's last linear layer for fine-tuning: weights ``N(0, std)`` (zeros when 0), bias 0.

    A pretrained backbone's features are large; a head drawn at the usual scale turns them into
    confident, random logits, and the first epoch's loss starts far above ``ln(num_classes)``. A
    zero (or tiny) head starts every prediction at the uniform distribution instead.
    Returns the number of linear layers changed (0 when the head holds none).

    Examples
    --------
    >>> from pixlearn.models import create_model
    >>> m = create_model("pixlearn_smallcnn_tiny", num_classes=3)
    >>> init_head(m), float(m.fc.weight.detach().abs().sum())
    (1, 0.0)
    """
    import torch

    heads = head_names(model)
    linears = [m for name, m in model.named_modules() if name and _in_head(name, heads) and isinstance(m, nn.Linear)]
    if not linears:
        return 0
    last = linears[-1]
    with torch.no_grad():
        if std > 0:
            last.weight.normal_(0.0, std)
        else:
            last.weight.zero_()
        if last.bias is not None:
            last.bias.zero_()
    return 1


def backbone_depths(model: nn.Module) -> dict[str, int]:
    """Depth of every backbone parameter, 0 at the input: its top-level module, and the block index below it.

    Used for layer-wise learning-rate decay. A parameter's group is its first name component,
    plus the second when that is a number (``blocks.3.1.conv.weight`` -> ``blocks.3``); groups
    are numbered in the order the model lists its parameters, which for timm and pixlearn models
    is the order of the forward pass.

    Examples
    --------
    >>> from pixlearn.models import create_model
    >>> d = backbone_depths(create_model("pixlearn_smallcnn_tiny", num_classes=3))
    >>> min(d.values()), max(d.values()) > 0
    (0, True)
    """
    backbone, _ = split_parameters(model)
    groups: dict[str, int] = {}
    depths: dict[str, int] = {}
    for name, _p in backbone:
        parts = name.split(".")
        key = parts[0] + ("." + parts[1] if len(parts) > 2 and parts[1].isdigit() else "")
        depths[name] = groups.setdefault(key, len(groups))
    return depths
