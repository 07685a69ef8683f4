"""Convert a dataset between layouts: read any supported format, write COCO, YOLO or Pascal VOC."""

from __future__ import annotations

import os

from pixlearn._core.names import check_name
from pixlearn.data.index import DatasetIndex
from pixlearn.data.readers import read_dataset
from pixlearn.data.writers import WRITERS, WriteResult

__all__ = ["convert", "OUTPUT_FORMATS"]

#: Formats :func:`convert` writes.
OUTPUT_FORMATS: tuple[str, ...] = tuple(WRITERS)


def convert(
    src: str | os.PathLike[str] | DatasetIndex,
    dst: str | os.PathLike[str],
    *,
    to: str,
    format: str | None = None,
    copy_images: bool = True,
    overwrite: bool = False,
    allow_outside_root: bool | None = None,
) -> WriteResult:
    """Read a dataset and write it in another layout; the source is never modified.

    Boxes survive within rounding: COCO -> YOLO -> COCO keeps every box to about 1e-7 of the
    image side (7-decimal normalised coordinates) and every category name and order; COCO ->
    VOC -> COCO keeps boxes within 1 px (VOC stores whole 1-based pixels). Images are
    hard-linked into the destination when it is on the same file system, else copied -- never
    moved or re-encoded. A hard link is the same file under two names: replace a converted
    image (write a new file) rather than editing it in place, or the original changes too.

    Parameters
    ----------
    src : path or DatasetIndex
        The dataset folder or annotation file (see :func:`~pixlearn.data.readers.read_dataset`),
        or an index already read.
    dst : path
        The folder to write; it must be empty or new unless ``overwrite=True``, and outside
        the source dataset.
    to : {"coco", "yolo", "voc"}
        The layout to write.
    format : str, optional
        The source format; detected when omitted.
    copy_images : bool, default True
        False writes the annotations only.
    overwrite : bool, default False
        Write into a non-empty ``dst``, replacing the layout's own files and folders there.
    allow_outside_root : bool, optional
        Read source records whose paths lead outside its folder (see
        :func:`~pixlearn.data.readers.read_dataset`); refused by default.

    Returns
    -------
    WriteResult
        ``dst``, the format, image and annotation counts, and notes on anything the target
        format cannot hold (crowd flags, instance masks in VOC) or records skipped.

    Raises
    ------
    UnknownNameError
        ``to`` or ``format`` is not a known format.
    ConfigError
        A dataset without boxes (classify, segment, restore), a non-empty destination without
        ``overwrite``, or a destination inside the source.
    AnnotationError
        The source has a malformed annotation.

    Examples
    --------
    >>> import json, tempfile, numpy as np, pixlearn
    >>> from pathlib import Path
    >>> src = Path(tempfile.mkdtemp())
    >>> _ = pixlearn.write_image(src / "images" / "a.png", np.zeros((32, 48, 3), np.uint8))
    >>> coco = {"images": [{"id": 1, "file_name": "a.png", "width": 48, "height": 32}],
    ...         "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 5, 16, 20]}],
    ...         "categories": [{"id": 3, "name": "cat"}]}
    >>> (src / "annotations").mkdir(); _ = (src / "annotations" / "instances_train.json").write_text(json.dumps(coco))
    >>> out = convert(src, Path(tempfile.mkdtemp()) / "yolo", to="yolo")
    >>> (out.images, out.annotations), read_dataset(out.dst).records[0].boxes.round(3).tolist()
    ((1, 1), [[4.0, 5.0, 20.0, 25.0]])
    """
    to = check_name(str(to).lower(), OUTPUT_FORMATS, what="output format")
    index = src if isinstance(src, DatasetIndex) else read_dataset(src, format=format, allow_outside_root=allow_outside_root)
    return WRITERS[to](index, dst, copy_images=copy_images, overwrite=overwrite)
