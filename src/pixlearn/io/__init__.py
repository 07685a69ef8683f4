"""Safe image reading and writing, and iteration over files, folders and globs (no torch)."""

from pixlearn.io.image import (
    DEFAULT_BACKGROUND,
    DEFAULT_MAX_PIXELS,
    MODES,
    WRITE_FORMATS,
    ImageInfo,
    encode_image,
    encode_palette_png,
    image_info,
    read_mask,
    read_image,
    write_image,
)
from pixlearn.io._sniff import ALLOWED_FORMATS
from pixlearn.io.atomic import atomic_write_bytes, atomic_write_text
from pixlearn.io.sources import IMAGE_EXTENSIONS, expand_sources, iter_images, unique_stem

__all__ = [
    "ALLOWED_FORMATS",
    "atomic_write_bytes",
    "atomic_write_text",
    "encode_palette_png",
    "read_mask",
    "DEFAULT_BACKGROUND",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "MODES",
    "WRITE_FORMATS",
    "ImageInfo",
    "encode_image",
    "expand_sources",
    "image_info",
    "iter_images",
    "read_image",
    "unique_stem",
    "write_image",
]
