"""Validate user-facing names with a did-you-mean suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pixlearn._core.errors import UnknownNameError

__all__ = ["closest", "check_name"]


def closest(name: str, choices: Iterable[str], *, n: int = 3) -> list[str]:
    """Return up to ``n`` entries of ``choices`` closest to ``name``, best first.

    Examples
    --------
    >>> closest("cany", ["canny", "sobel", "otsu"])
    ['canny']
    """
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def check_name(name: str, choices: Iterable[str], *, what: str) -> str:
    """Return ``name`` if it is one of ``choices``, else raise :class:`UnknownNameError`.

    The message lists the valid names and the closest match.

    Examples
    --------
    >>> check_name("RGB", ["RGB", "L"], what="mode")
    'RGB'
    >>> check_name("rbg", ["RGB", "L"], what="mode")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.UnknownNameError: unknown mode 'rbg'; did you mean 'RGB'? Valid: 'L', 'RGB'
    """
    choices = list(choices)
    if name in choices:
        return name
    hint = closest(str(name), choices)
    valid = ", ".join(repr(c) for c in sorted(choices))
    suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
    raise UnknownNameError(f"unknown {what} {name!r}{suggestion} Valid: {valid}")
