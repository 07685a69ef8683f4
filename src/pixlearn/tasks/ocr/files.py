"""Reading the text of image files, folders and globs: one row per image, drawn images on request.

* :func:`read_text_files` -- one row per input (its text pieces, or why it could not be read: never fatal), with the
  drawn images in a folder when asked.
* :func:`text_table` -- the rows as one flat row per piece of text (CSV, tables; :data:`TABLE_COLUMNS`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pixlearn._core.errors import ConfigError, PixlearnError
from pixlearn.tasks.ocr.read import DEFAULT_MAX_SIDE, check_read_options, read_text_oriented

__all__ = ["read_text_files", "text_table", "drawn_paths", "TABLE_COLUMNS"]

#: The columns of :func:`text_table`: the image, the piece (its line, string, confidence), its four corners
#: clockwise from the top-left, and the error of an unreadable image.
TABLE_COLUMNS = ("path", "image_id", "line", "text", "confidence", "x0", "y0", "x1", "y1", "x2", "y2", "x3", "y3", "error")


def drawn_paths(paths: Sequence[str | os.PathLike[str]], folder: str | os.PathLike[str] | None) -> list[Path | None]:
    """The drawn-image file of each input in ``folder``: ``<stem><ext>`` (``.png`` for an extension pixlearn does not
    write); inputs sharing a stem get ``a.png``, ``a-2.png``... in input order, readable or not.

    >>> [p.name for p in drawn_paths(["x/a.png", "y/a.png", "b.tif", "c.gif"], "out")]
    ['a.png', 'a-2.png', 'b.tif', 'c.png']
    """
    from pixlearn.io import WRITE_FORMATS, unique_stem

    if folder is None:
        return [None] * len(paths)
    used: set[str] = set()
    out: list[Path | None] = []
    for p in paths:
        src = Path(p)
        suffix = src.suffix.lower() if src.suffix.lower() in WRITE_FORMATS else ".png"
        out.append(Path(folder) / f"{unique_stem(src.stem, used)}{suffix}")
    return out


def _read_file(engine: Any, path: Path, image_id: int, drawn: Path | None, *, min_confidence: float, rotation: str,
               max_side: int) -> dict[str, Any]:
    from pixlearn.io import read_image, write_image
    from pixlearn.tasks.ocr.draw import draw_text_lines

    row: dict[str, Any] = {"path": str(path), "image_id": image_id, "width": None, "height": None, "angle": 0,
                           "count": 0, "text": "", "lines": [], "drawn": None, "error": None}
    try:
        image = read_image(path)
        lines, angle = read_text_oriented(image, min_confidence=min_confidence, rotation=rotation,  # type: ignore[arg-type]
                                          max_side=max_side, engine=engine)
    except (PixlearnError, OSError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    by_line: dict[int, list[str]] = {}
    for t in lines:
        by_line.setdefault(t.line, []).append(t.text)
    row.update(height=int(image.shape[0]), width=int(image.shape[1]), angle=angle, count=len(lines),
               text="\n".join(" ".join(parts) for parts in by_line.values()), lines=[t.to_dict() for t in lines])
    if drawn is not None:
        row["drawn"] = str(write_image(drawn, draw_text_lines(image, lines)))
    return row


def read_text_files(
    images: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    min_confidence: float = 0.5,
    rotation: str = "auto",
    max_side: int = DEFAULT_MAX_SIDE,
    det_model: str | os.PathLike[str] | None = None,
    rec_model: str | os.PathLike[str] | None = None,
    rec_keys: str | os.PathLike[str] | None = None,
    engine: Any = None,
    draw: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Read the text in image files, folders (recursively) and globs.

    Parameters
    ----------
    images : path, glob or list of them
    min_confidence, rotation, max_side
        As for :func:`~pixlearn.tasks.ocr.read.read_text`; checked before any model loads.
    det_model, rec_model, rec_keys : path, optional
        PP-OCR ONNX models of your own (see :class:`~pixlearn.tasks.ocr.engine.OcrEngine`); ignored with ``engine``.
    engine : OcrEngine, optional
        Loaded models to use; default: :func:`~pixlearn.tasks.ocr.engine.get_engine` of the model options.
    draw : path, optional
        A folder for each image drawn with its text (:func:`drawn_paths` names them); created when missing.
    progress : bool, optional
        A progress bar on stderr (default: when stderr is a terminal).

    Returns
    -------
    list of dict
        One row per input, in order: ``path``, ``image_id`` (1, 2, ...), ``width``, ``height``, ``angle`` (see
        :func:`~pixlearn.tasks.ocr.read.read_text_oriented`), ``count``, ``text`` (the pieces joined by spaces, lines
        by newlines), ``lines`` (:meth:`TextLine.to_dict` of each piece in reading order), ``drawn`` (the written
        image, or None) and ``error`` (why the file could not be read, else None).

    Examples
    --------
    >>> [(r["path"], r["error"][:20]) for r in read_text_files(["missing.png"], engine=object())]
    [('missing.png', 'ImageNotFoundError: ')]
    """
    from pixlearn.engine.progress import progress_bar
    from pixlearn.io import expand_sources

    min_confidence, rotation, max_side = check_read_options(min_confidence, rotation, max_side)
    if draw is not None and Path(draw).exists() and not Path(draw).is_dir():
        raise ConfigError(f"draw {draw}: exists and is not a folder; give a folder for the drawn images")
    paths = [Path(p) for p, _ in expand_sources(images)]
    targets = drawn_paths(paths, draw)
    if engine is None:
        from pixlearn.tasks.ocr.engine import get_engine

        engine = get_engine(det_model=det_model, rec_model=rec_model, rec_keys=rec_keys)
    if draw is not None and paths:
        Path(draw).mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    bar, task = progress_bar(progress, len(paths), "reading text")
    with bar:
        for image_id, (path, drawn) in enumerate(zip(paths, targets), start=1):
            rows.append(_read_file(engine, path, image_id, drawn, min_confidence=min_confidence, rotation=rotation,
                                   max_side=max_side))
            bar.advance(task)
    return rows


def text_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat row per piece of text (:data:`TABLE_COLUMNS`); an image without text, or unreadable, gets one row with
    empty piece columns (and its ``error``).

    >>> rows = [{"path": "a.png", "image_id": 1, "error": None, "lines": [{"text": "hi", "confidence": 0.9, "line": 0,
    ...          "quad": [[1, 2], [9, 2], [9, 6], [1, 6]]}]}]
    >>> text_table(rows)[0]["x2"], text_table(rows)[0]["text"]
    (9, 'hi')
    """
    out = []
    for row in rows:
        base = {"path": row["path"], "image_id": row.get("image_id"), "error": row.get("error")}
        pieces = row.get("lines") or []
        if not pieces:
            out.append(dict(base))
        for piece in pieces:
            corners = {f"{axis}{i}": int(pt[j]) for i, pt in enumerate(piece["quad"]) for j, axis in enumerate("xy")}
            out.append({**base, "line": piece["line"], "text": piece["text"], "confidence": piece["confidence"], **corners})
    return out
