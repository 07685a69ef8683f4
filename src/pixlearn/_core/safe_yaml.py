"""Parse user YAML and JSON with limits: size, nesting depth, node count, and no alias expansion.

A few hundred bytes of YAML with nested anchors and aliases (a "billion laughs") describe
billions of values; PyYAML builds them as shared references, and the first ``repr``, copy or
walk over the result never ends. Deeply nested input exhausts the recursion of the composer or
of ``json``. Every YAML or JSON document that comes from a user (a recipe, a run config, a
dataset's ``data.yaml``, a service request body) goes through :func:`load_yaml` or
:func:`load_json`, which refuse before building anything:

- input over ``max_bytes``;
- anchors and aliases (``&a`` / ``*a``), unless ``allow_aliases``: then each alias counts as
  the whole value it repeats, so the expanded size is what ``max_nodes`` bounds;
- nesting deeper than ``max_depth``;
- more than ``max_nodes`` values (scalars, lists and mappings, aliases expanded).

The checks run over PyYAML's event stream (no recursion, nothing built), so a refused document
costs at most one pass over its bytes. Errors are :class:`~pixlearn._core.errors.ConfigError`
(or the ``error`` class asked for) naming the input, the limit and the fix.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError, PixlearnError

__all__ = ["load_yaml", "load_yaml_file", "load_json", "read_text_limited", "MAX_BYTES", "MAX_DEPTH", "MAX_NODES"]

#: Default limits: far above any recipe, run config or data.yaml, far below what hurts.
MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 100_000


def _size(n: int) -> str:
    return f"{n / 2**20:.3g} MB" if n >= 2**20 else f"{n / 2**10:.3g} KB" if n >= 2**10 else f"{n} bytes"


def _where(event: Any) -> str:
    mark = getattr(event, "start_mark", None) or getattr(event, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def _check_size(data: str | bytes, what: str, max_bytes: int, error: type[PixlearnError]) -> bytes | str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        n = len(data)
    elif isinstance(data, str):
        # a str's UTF-8 size is at most 4 bytes per character: only encode when that bound is over the limit
        n = len(data) if len(data) * 4 <= max_bytes else len(data.encode("utf-8", "surrogatepass"))
    else:
        raise error(f"{what}: expected text, got {type(data).__name__}")
    if n > max_bytes:
        raise error(f"{what}: {_size(n)}, over the limit of {_size(max_bytes)} for this input; send a smaller document")
    return bytes(data) if isinstance(data, (bytearray, memoryview)) else data


def _check_events(text: str | bytes, *, what: str, max_depth: int, max_nodes: int, allow_aliases: bool,
                  error: type[PixlearnError], loader: type) -> None:
    """One pass over the event stream: depth, node count (aliases expanded) and the alias policy."""
    import yaml
    from yaml.events import (
        AliasEvent,
        CollectionEndEvent,
        CollectionStartEvent,
        DocumentStartEvent,
        NodeEvent,
        ScalarEvent,
    )

    nodes = 0
    # One frame per open list or mapping: [nodes before it, its anchor, height of its tallest child].
    stack: list[list[Any]] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded node count, height)
    documents = 0

    def close(count: int, height: int, anchor: str | None) -> None:
        if anchor is not None:
            anchors[anchor] = (count, height)
        if stack:
            stack[-1][2] = max(stack[-1][2], height)

    parser = loader(text)
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise error(f"{what}: holds more than one YAML document (a second '---'); send one document")
                continue
            if not isinstance(event, (NodeEvent, CollectionEndEvent)):
                continue
            anchor = getattr(event, "anchor", None)
            if anchor is not None and not allow_aliases:
                kind = "alias" if isinstance(event, AliasEvent) else "anchor"
                raise error(f"{what}: uses the YAML {kind} {'*' if kind == 'alias' else '&'}{anchor}{_where(event)}; "
                            "anchors and aliases are not accepted here (a few of them can expand to billions of "
                            "values): write the values out in full")
            if isinstance(event, AliasEvent):
                if anchor not in anchors:
                    raise error(f"{what}: the alias *{anchor}{_where(event)} refers to no complete anchor before it")
                count, height = anchors[anchor]
                nodes += count
                depth = len(stack) + height
                if depth > max_depth:
                    raise error(f"{what}: nests more than {max_depth} levels deep (with alias *{anchor} expanded)"
                                f"{_where(event)}; flatten the document")
                close(count, height, None)
            elif isinstance(event, ScalarEvent):
                nodes += 1
                if len(stack) + 1 > max_depth:
                    raise error(f"{what}: nests more than {max_depth} levels deep{_where(event)}; flatten the document")
                close(1, 1, anchor)
            elif isinstance(event, CollectionStartEvent):
                nodes += 1
                stack.append([nodes - 1, anchor, 0])
                if len(stack) > max_depth:
                    raise error(f"{what}: nests more than {max_depth} levels deep{_where(event)}; flatten the document")
            else:  # the end of a list or mapping
                start, own_anchor, tallest = stack.pop()
                close(nodes - start, tallest + 1, own_anchor)
            if nodes > max_nodes:
                raise error(f"{what}: holds more than {max_nodes:,} values"
                            f"{' (aliases expanded)' if allow_aliases else ''}, over the limit for this input; "
                            "send a smaller document")
    except yaml.YAMLError as exc:
        if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own cap (1,000 levels), met first
            raise error(f"{what}: nests more than {max_depth} levels deep{_where(exc)}; flatten the document") from None
        raise error(_invalid(what, exc)) from None
    finally:
        parser.dispose()


def _invalid(what: str, exc: Exception) -> str:
    """``<what>: line N: not valid YAML (<problem> at column M)``."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"{what}: not valid YAML ({problem})"
    return f"{what}: line {mark.line + 1}: not valid YAML ({problem} at column {mark.column + 1})"


def load_yaml(text: str | bytes, *, what: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
              max_nodes: int = MAX_NODES, allow_aliases: bool = False,
              error: type[PixlearnError] = ConfigError) -> Any:
    """Parse one YAML document from a user, within limits (PyYAML's safe loader: plain values only).

    Parameters
    ----------
    text : str or bytes
        The document (bytes are read as UTF-8, or UTF-16 with a BOM).
    what : str
        How messages name the input (a file path, ``"recipe"``, ``"--config run.yaml"``).
    max_bytes, max_depth, max_nodes : int
        Largest input size, deepest nesting (a top-level scalar is depth 1) and most values
        (scalars, lists and mappings; aliases count as what they repeat).
    allow_aliases : bool
        Accept anchors and aliases (their expanded size is still bounded by ``max_nodes``).
    error : type
        The exception class raised (default :class:`ConfigError`).

    Returns
    -------
    object
        The parsed value (``None`` for an empty document).

    Raises
    ------
    ConfigError
        Invalid YAML, or a limit exceeded; the message names ``what`` and the limit.

    Examples
    --------
    >>> load_yaml("steps: [gaussian: {sigma: 1.5}, canny]", what="recipe")
    {'steps': [{'gaussian': {'sigma': 1.5}}, 'canny']}
    >>> load_yaml("a: &x [1, 2]\\nb: *x", what="recipe")
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: recipe: uses the YAML anchor &x (line 1, column 4); anchors and aliases are not accepted here (a few of them can expand to billions of values): write the values out in full
    >>> load_yaml("[[[[1]]]]", what="run.yaml", max_depth=3)
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: run.yaml: nests more than 3 levels deep (line 1, column 4); flatten the document
    """
    import yaml

    text = _check_size(text, what, max_bytes, error)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    _check_events(text, what=what, max_depth=max_depth, max_nodes=max_nodes, allow_aliases=allow_aliases,
                  error=error, loader=loader)
    try:  # within the limits above, building the value is bounded too
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise error(_invalid(what, exc)) from None
    except (ValueError, OverflowError, TypeError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
        raise error(f"{what}: a value cannot be read ({exc})") from None


def read_text_limited(path: str | os.PathLike[str], *, what: str | None = None, max_bytes: int = MAX_BYTES,
                      error: type[PixlearnError] = ConfigError) -> str:
    """The UTF-8 text of a regular file, refusing files over ``max_bytes`` (and FIFOs, devices, folders).

    ``FileNotFoundError`` is passed on (callers word it); every other problem raises ``error``.
    """
    import stat

    path = Path(path)
    what = what or str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise error(f"{what}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # checked on the open file: no race with a swapped path
            raise error(f"{what}: is not a regular file; give the path of a text file")
        if st.st_size > max_bytes:
            raise error(f"{what}: {_size(st.st_size)}, over the limit of {_size(max_bytes)} for this input; "
                        "use a smaller file")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while being read
        raise error(f"{what}: more than {_size(max_bytes)}, over the limit for this input; use a smaller file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what}: is not UTF-8 text ({exc}); save the file as UTF-8") from None


def load_yaml_file(path: str | os.PathLike[str], *, what: str | None = None, max_bytes: int = MAX_BYTES,
                   max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES, allow_aliases: bool = False,
                   error: type[PixlearnError] = ConfigError) -> Any:
    """:func:`load_yaml` of a file's text, read with :func:`read_text_limited` (``what`` defaults to the path)."""
    what = what or str(path)
    text = read_text_limited(path, what=what, max_bytes=max_bytes, error=error)
    return load_yaml(text, what=what, max_bytes=max_bytes, max_depth=max_depth, max_nodes=max_nodes,
                     allow_aliases=allow_aliases, error=error)


def _json_depth_over(value: Any, max_depth: int) -> bool:
    """Whether ``value`` nests deeper than ``max_depth`` (a top-level scalar is depth 1; iterative, no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if depth + 1 > max_depth:
                return True
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def load_json(data: str | bytes, *, what: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
              error: type[PixlearnError] = ConfigError) -> Any:
    """Parse JSON from a user, within a size and a nesting limit (JSON has no aliases; its size bounds its values).

    Examples
    --------
    >>> load_json(b'{"features": "colors"}', what="the JSON body")
    {'features': 'colors'}
    >>> load_json("[" * 100 + "]" * 100, what="the JSON body", max_depth=10)
    Traceback (most recent call last):
    ...
    pixlearn._core.errors.ConfigError: the JSON body: nests more than 10 levels deep; flatten the document
    """
    data = _check_size(data, what, max_bytes, error)
    try:
        value = json.loads(data)
    except RecursionError:
        raise error(f"{what}: nests more than {max_depth} levels deep; flatten the document") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, an integer of 5,000 digits, bad UTF-8
        raise error(f"{what}: not valid JSON ({exc})") from None
    if _json_depth_over(value, max_depth):
        raise error(f"{what}: nests more than {max_depth} levels deep; flatten the document")
    return value
