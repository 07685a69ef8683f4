"""Safe image decoding and encoding: ``read_image``, ``write_image``, ``image_info``.

Decoding is guarded: the format is recognised from the bytes (never the file
name) and must be on the allowlist (JPEG, PNG, WebP, TIFF, BMP, GIF); the pixel
count is read from the header and checked against a limit before any pixel is
decoded; every failure becomes a :class:`~pixlearn.PixlearnError` subclass whose
message names the input and the reason.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any, BinaryIO, Literal, Union

import numpy as np

from pixlearn._core.errors import (
    ConfigError,
    ImageDecodeError,
    ImageNotFoundError,
    ImageTooLargeError,
    ImageWriteError,
    PixlearnError,
    ShapeError,
    UnsupportedFormatError,
)
from pixlearn._core.names import check_name
from pixlearn.io._sniff import ALLOWED_FORMATS, header_size, parse_jpeg_header, parse_png_header, sniff_format

__all__ = [
    "ImageSource",
    "Mode",
    "MODES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_BACKGROUND",
    "ImageInfo",
    "read_image",
    "image_info",
    "write_image",
    "encode_image",
    "encode_palette_png",
    "read_mask",
    "WRITE_FORMATS",
]

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, BinaryIO]
Mode = Literal["RGB", "L", "RGBA", "unchanged"]
MODES: tuple[str, ...] = ("RGB", "L", "RGBA", "unchanged")

#: Default pixel-count limit (about 90 megapixels), overridable per call with
#: ``max_pixels=`` or for the process with the ``PIXLEARN_MAX_PIXELS`` variable.
DEFAULT_MAX_PIXELS = 90_000_000
#: Colour that transparent pixels are composited onto for ``mode="RGB"`` and ``"L"``.
DEFAULT_BACKGROUND = (255, 255, 255)

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says, read without decoding its pixels."""

    source: str
    format: str
    width: int
    height: int
    mode: str
    bit_depth: int
    frames: int
    orientation: int
    nbytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- source handling
def _describe(source: object) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, (str, os.PathLike)) else "<file object>"


def _read_regular_file(path: str | os.PathLike, name: str) -> bytes:
    """The bytes of ``path``, opened without blocking and read only when it is a regular file.

    A FIFO, socket or device would block the reader (or never end): it is refused from the open
    file's own ``fstat``, so nothing can swap the file between the check and the read.
    """
    if "\x00" in str(os.fspath(path)):
        raise ImageNotFoundError(f"{name!r}: a path cannot contain a NUL byte; check the path")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImageNotFoundError(f"{name}: no such file; check the path") from None
    except IsADirectoryError:
        fd = -1
    except OSError as exc:
        raise ImageDecodeError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    try:
        mode = os.fstat(fd).st_mode if fd >= 0 else stat.S_IFDIR
        if stat.S_ISDIR(mode):
            raise ImageDecodeError(f"{name}: is a folder, not an image file; use iter_images() to read a folder")
        if not stat.S_ISREG(mode):
            raise ImageDecodeError(f"{name}: is not a regular file (a FIFO, socket or device); give an image file")
        with os.fdopen(fd, "rb") as fh:
            fd = -1  # closed by the file object
            return fh.read()
    except OSError as exc:
        raise ImageDecodeError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    finally:
        if fd >= 0:
            os.close(fd)


def _read_source(source: ImageSource) -> tuple[bytes, str]:
    name = _describe(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name
    if isinstance(source, (str, os.PathLike)):
        return _read_regular_file(source, name), name
    read = getattr(source, "read", None)
    if read is None:
        raise ImageDecodeError(
            f"{name}: expected a path, bytes or a binary file object, got {type(source).__name__}"
        )
    try:
        data = read()
    except Exception as exc:  # a file object may raise anything
        raise ImageDecodeError(f"{name}: reading the file object failed ({exc})") from None
    if isinstance(data, str):
        raise ImageDecodeError(f"{name}: the file object returned text; open it in binary mode ('rb')")
    return bytes(data), name


def _max_pixels(max_pixels: int | None) -> int:
    if max_pixels is not None:
        if max_pixels <= 0:
            raise ConfigError(f"max_pixels must be positive, got {max_pixels}")
        return int(max_pixels)
    env = os.environ.get("PIXLEARN_MAX_PIXELS")
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise ConfigError(
                f"PIXLEARN_MAX_PIXELS={env!r} is not a number; set it to a pixel count such as 90000000"
            ) from None
    return DEFAULT_MAX_PIXELS


def _check_format(data: bytes, name: str) -> str:
    if not data:
        raise ImageDecodeError(f"{name}: empty input (0 bytes); the file is not an image")
    fmt, refused = sniff_format(data[:32])
    if refused is not None:
        raise UnsupportedFormatError(
            f"{name}: {refused} is not an allowed image format; convert it to one of "
            f"{', '.join(ALLOWED_FORMATS)}"
        )
    if fmt is None:
        kind = "text" if _looks_like_text(data[:512]) else "unrecognised bytes"
        raise ImageDecodeError(
            f"{name}: not an image ({kind}, starts with {data[:8]!r}); expected one of "
            f"{', '.join(ALLOWED_FORMATS)}, recognised from the content, not the file name"
        )
    return fmt


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_pixels(name: str, width: int, height: int, limit: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{name}: header declares an empty image ({width}x{height})")
    if width * height > limit:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} = {width * height:,} pixels exceeds the limit of {limit:,}; "
            "pass max_pixels= (or set PIXLEARN_MAX_PIXELS) if you trust this file"
        )


# ---------------------------------------------------------------- array helpers
def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W[, C]) array."""
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.swapaxes(0, 1)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = np.rot90(arr, 1)[::-1]
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    return np.ascontiguousarray(arr)


def _to_8bit(arr: np.ndarray) -> np.ndarray:
    """Scale uint16 to uint8 by 257 with rounding (65535 -> 255, 257 -> 1)."""
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _composite(color: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.uint32)[..., None]
    out = (color.astype(np.uint32) * a + background.astype(np.uint32) * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, the same integer formula Pillow's ``convert("L")`` uses."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def _background(background: tuple[int, int, int]) -> np.ndarray:
    bg = np.asarray(background)
    if bg.shape != (3,) or bg.min() < 0 or bg.max() > 255:
        raise ConfigError(f"background must be three integers in 0..255, got {background!r}")
    return bg.astype(np.uint8)


def _convert(arr: np.ndarray, mode: str, background: tuple[int, int, int]) -> np.ndarray:
    """Turn a native array (grey, grey+alpha, RGB or RGBA; uint8 or uint16) into ``mode``."""
    if mode == "unchanged":
        return arr
    if arr.dtype == np.uint16:
        arr = _to_8bit(arr)
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    if channels == 1:
        grey = arr if arr.ndim == 2 else arr[..., 0]
        if mode == "L":
            return grey
        rgb = np.repeat(grey[..., None], 3, axis=2)
        if mode == "RGB":
            return rgb
        return np.dstack([rgb, np.full(grey.shape, 255, np.uint8)])
    if channels == 2:
        rgb = np.repeat(arr[..., :1], 3, axis=2)
        alpha = arr[..., 1]
    elif channels == 3:
        if mode == "RGB":
            return arr
        if mode == "L":
            return _luma(arr)
        return np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    else:
        rgb, alpha = arr[..., :3], arr[..., 3]
    if mode == "RGBA":
        return np.ascontiguousarray(np.dstack([rgb, alpha]))
    flat = _composite(rgb, alpha, _background(background))
    return _luma(flat) if mode == "L" else flat


# ---------------------------------------------------------------- decoders
_CV2 = None


def _cv2():
    global _CV2
    if _CV2 is None:
        import cv2

        _CV2 = cv2
    return _CV2


def _decode_jpeg_fast(data: bytes, name: str, mode: str, limit: int) -> np.ndarray | None:
    """Decode an ordinary 8-bit grey/YCbCr JPEG with OpenCV; ``None`` to fall back to Pillow."""
    header = parse_jpeg_header(data)
    if header is None or header.height == 0:
        return None
    _check_pixels(name, header.width, header.height, limit)
    if header.components not in (1, 3) or header.precision != 8:
        return None
    if data.rfind(b"\xff\xd9", header.sos_offset) == -1:
        raise ImageDecodeError(
            f"{name}: truncated JPEG (the data ends before the end-of-image marker); "
            "the file was cut short, re-export or re-download it"
        )
    cv2 = _cv2()
    stored_grey = header.components == 1
    if mode == "RGB" or (mode == "unchanged" and not stored_grey):
        arr = _decode_jpeg_rgb(np.frombuffer(data, np.uint8), cv2)
        if arr is None:
            raise ImageDecodeError(f"{name}: corrupt JPEG data; the decoder could not read it")
        return arr
    flags = cv2.IMREAD_GRAYSCALE if stored_grey and mode in ("L", "unchanged") else cv2.IMREAD_COLOR
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if arr is None:
        raise ImageDecodeError(f"{name}: corrupt JPEG data; the decoder could not read it")
    if arr.ndim == 2:
        return arr
    if mode == "L":  # luma of the decoded colours, as for every other format
        return cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
    if mode == "RGBA":
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGBA)
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _decode_jpeg_rgb(buf: np.ndarray, cv2) -> np.ndarray | None:
    """libjpeg straight to RGB where OpenCV offers it (no BGR pass); ``None`` when it fails."""
    flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    if flag is None:
        arr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return None if arr is None else cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return cv2.imdecode(buf, flag)


def _open_pil(data: bytes, name: str, fmt: str, limit: int):
    from PIL import Image

    size = header_size(data, fmt)
    if size is not None:
        _check_pixels(name, size[0], size[1], limit)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(
                f"{name}: {exc} (Pillow's own limit, PIL.Image.MAX_IMAGE_PIXELS, applies beyond pixlearn's)"
            ) from None
        except Exception as exc:
            raise ImageDecodeError(f"{name}: corrupt or truncated {fmt} header ({exc})") from None
    _check_pixels(name, im.width, im.height, limit)
    return im


def _orientation_of(im) -> int:
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # broken EXIF must not make a good image unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _is_16bit_colour(im, data: bytes, fmt: str) -> bool:
    if fmt == "PNG":
        header = parse_png_header(data)
        return header is not None and header[2] == 16 and header[3] in (2, 6)
    if fmt == "TIFF" and im.mode in ("RGB", "RGBA", "RGBX"):
        bits = getattr(im, "tag_v2", {}).get(258)
        return bits is not None and tuple(bits)[:1] == (16,)
    return False


def _native_from_pil(im, data: bytes, name: str, fmt: str) -> np.ndarray:
    """Decode the first frame into grey / grey+alpha / RGB / RGBA, keeping 16 bits."""
    from PIL import ImageCms

    if _is_16bit_colour(im, data, fmt):
        cv2 = _cv2()
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ImageDecodeError(f"{name}: corrupt 16-bit {fmt} data")
        if arr.ndim == 3:
            code = cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
            arr = cv2.cvtColor(arr, code)
        return arr
    im.load()
    m = im.mode
    if m in ("L", "RGB", "RGBA", "LA"):
        if m == "RGB" and "transparency" in im.info:
            im = im.convert("RGBA")
        elif m == "L" and "transparency" in im.info:
            im = im.convert("LA")
        return np.asarray(im)
    if m.startswith("I;16"):
        return np.asarray(im).astype(np.uint16)
    if m == "I":
        if fmt == "PNG" or (getattr(im, "tag_v2", {}).get(258, (32,))[:1] == (16,)):
            return np.clip(np.asarray(im), 0, 65535).astype(np.uint16)
        raise ImageDecodeError(
            f"{name}: 32-bit integer pixels cannot be represented without rescaling; "
            "convert the file to 8 or 16 bits"
        )
    if m == "F":
        raise ImageDecodeError(
            f"{name}: floating-point pixels cannot be represented without rescaling; "
            "convert the file to 8 or 16 bits"
        )
    if m == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                return np.asarray(ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"))
            except Exception:
                pass  # an unusable profile falls back to the plain formula
        return np.asarray(im.convert("RGB"))
    if m in ("P", "PA"):
        has_alpha = m == "PA" or "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        return np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    if m in ("1",):
        return np.asarray(im.convert("L"))
    if m in ("La",):
        return np.asarray(im.convert("LA"))
    if m in ("RGBa",):
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))  # YCbCr, LAB, HSV, RGBX


# ---------------------------------------------------------------- public API
def read_image(
    source: ImageSource,
    *,
    mode: Mode = "RGB",
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode an image safely into a numpy array.

    Parameters
    ----------
    source : str, os.PathLike, bytes or binary file object
        The encoded image. The format is recognised from the bytes, not the name.
    mode : {"RGB", "L", "RGBA", "unchanged"}
        ``"RGB"``: (H, W, 3) uint8, transparency composited onto ``background``.
        ``"L"``: (H, W) uint8 luma (ITU-R 601-2), after the same compositing.
        ``"RGBA"``: (H, W, 4) uint8, opaque images get alpha 255.
        ``"unchanged"``: the stored channels (grey (H, W), grey+alpha, RGB or RGBA)
        and depth (uint8, or uint16 for 16-bit files); CMYK and palette images are
        still expanded to RGB(A).
        16-bit data is scaled to 8 bits by dividing by 257 with rounding, never clipped.
    background : tuple of 3 ints, default (255, 255, 255)
        Colour under transparent pixels for ``"RGB"`` and ``"L"``.
    max_pixels : int, optional
        Refuse images whose header declares more pixels than this. Default: the
        ``PIXLEARN_MAX_PIXELS`` environment variable, else 90,000,000.

    Returns
    -------
    ndarray
        The first frame (for animations), with its EXIF orientation applied.

    Raises
    ------
    ImageNotFoundError
        The path does not exist.
    ImageDecodeError
        Empty, truncated, corrupt, or not an image.
    UnsupportedFormatError
        An image format outside JPEG, PNG, WebP, TIFF, BMP, GIF (e.g. PDF, EPS, HEIF).
    ImageTooLargeError
        More pixels than ``max_pixels``; checked from the header before decoding.

    Examples
    --------
    >>> import numpy as np, pixlearn
    >>> data = pixlearn.io.encode_image(np.zeros((4, 6, 3), np.uint8), "png")
    >>> pixlearn.read_image(data).shape
    (4, 6, 3)
    >>> pixlearn.read_image(data, mode="L").dtype
    dtype('uint8')
    """
    mode = check_name(mode, MODES, what="mode")  # type: ignore[assignment]
    limit = _max_pixels(max_pixels)
    data, name = _read_source(source)
    return _decode(data, name, mode, background, limit)


def _decode(data: bytes, name: str, mode: str, background: tuple[int, int, int], limit: int) -> np.ndarray:
    fmt = _check_format(data, name)
    try:
        if fmt == "JPEG":
            arr = _decode_jpeg_fast(data, name, mode, limit)
            if arr is not None:
                return arr
        im = _open_pil(data, name, fmt, limit)
        orientation = _orientation_of(im)
        try:
            native = _native_from_pil(im, data, name, fmt)
        except PixlearnError:
            raise
        except Exception as exc:
            raise ImageDecodeError(f"{name}: corrupt or truncated {fmt} data ({exc})") from None
        if orientation != 1:
            native = _orient(native, orientation)
        return _convert(native, mode, background)
    except PixlearnError:
        raise
    except MemoryError:
        raise ImageTooLargeError(f"{name}: not enough memory to decode this image") from None
    except Exception as exc:  # nothing but PixlearnError leaves this function
        raise ImageDecodeError(f"{name}: could not decode {fmt} ({type(exc).__name__}: {exc})") from None


def image_info(source: ImageSource, *, max_pixels: int | None = None) -> ImageInfo:
    """Read an image's header (format, size, mode, frames, EXIF orientation) without decoding it.

    Raises the same errors as :func:`read_image` for inputs refused by their header.
    ``width`` and ``height`` are as stored; an orientation of 5-8 swaps them on decoding.

    Examples
    --------
    >>> import numpy as np, pixlearn
    >>> info = pixlearn.image_info(pixlearn.io.encode_image(np.zeros((4, 6), np.uint8), "png"))
    >>> (info.format, info.width, info.height, info.mode)
    ('PNG', 6, 4, 'L')
    """
    limit = _max_pixels(max_pixels)
    data, name = _read_source(source)
    fmt = _check_format(data, name)
    im = _open_pil(data, name, fmt, limit)
    try:
        frames = int(getattr(im, "n_frames", 1))
    except Exception:
        frames = 1
    bit_depth = 8
    if fmt == "PNG":
        header = parse_png_header(data)
        bit_depth = header[2] if header else 8
    elif im.mode.startswith("I;16") or im.mode == "I":
        bit_depth = 16 if im.mode.startswith("I;16") else 32
    elif fmt == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258)
        bit_depth = int(tuple(bits)[0]) if bits else 8
    elif im.mode == "1":
        bit_depth = 1
    return ImageInfo(
        source=name,
        format=fmt,
        width=im.width,
        height=im.height,
        mode=im.mode,
        bit_depth=bit_depth,
        frames=frames,
        orientation=_orientation_of(im),
        nbytes=len(data),
    )


# ---------------------------------------------------------------- encoding
WRITE_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}
_ENCODE_EXT = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp", "tiff": ".tiff", "tif": ".tiff", "bmp": ".bmp"}


def _check_array(image: object, fmt: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ShapeError(f"expected a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ShapeError(
            f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}"
        )
    if image.size == 0:
        raise ShapeError(f"cannot write an empty image of shape {image.shape}")
    allowed = (np.uint8, np.uint16) if fmt in ("png", "tiff") else (np.uint8,)
    if image.dtype not in allowed:
        names = " or ".join(np.dtype(d).name for d in allowed)
        raise ShapeError(
            f"{fmt.upper()} takes {names} pixels, got {image.dtype}; convert explicitly "
            "(e.g. pixlearn.ops.to_uint8(image, clip=True)) so no value is rescaled silently"
        )
    if fmt == "jpeg" and image.ndim == 3 and image.shape[2] == 4:
        raise ShapeError("JPEG has no alpha channel; drop it (image[..., :3]) or write PNG/WebP/TIFF")
    return image


def encode_image(image: np.ndarray, format: str = "png", *, quality: int = 95, png_compression: int | None = None) -> bytes:
    """Encode an (H, W[, C]) RGB(A) or grey array to PNG/JPEG/WebP/TIFF/BMP bytes.

    Examples
    --------
    >>> import numpy as np
    >>> encode_image(np.zeros((2, 2, 3), np.uint8), "png")[:4]
    b'\\x89PNG'
    """
    fmt = check_name(format.lower().lstrip("."), list(_ENCODE_EXT), what="image format")
    fmt = {"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt)
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"quality must be in 1..100, got {quality}")
    if png_compression is not None and not 0 <= int(png_compression) <= 9:
        raise ConfigError(f"png_compression must be in 0..9, got {png_compression}")
    image = _check_array(image, fmt)
    cv2 = _cv2()
    if image.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(np.ascontiguousarray(image), code)
    params: list[int] = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    elif fmt == "png" and png_compression is not None:
        # no parameter keeps OpenCV's own fast default (level 1 with a filter strategy that is 2-3x
        # faster than an explicit level 1 on both photos and edge maps)
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    ok, buf = cv2.imencode(_ENCODE_EXT[fmt], image, params)
    if not ok:
        raise ImageWriteError(f"encoding a {image.shape} {image.dtype} image as {fmt.upper()} failed")
    return buf.tobytes()


def encode_palette_png(mask: np.ndarray, palette: np.ndarray | Sequence[Sequence[int]]) -> bytes:
    """Encode an (H, W) uint8 index image as a palette ("P" mode) PNG.

    The pixel values are stored unchanged (a reader that keeps indices, such as
    :func:`read_mask`, gets them back); a viewer shows index ``i`` in ``palette[i]``.

    Parameters
    ----------
    mask : ndarray of shape (H, W), uint8
    palette : array-like of shape (K, 3), K <= 256
        RGB colour of index 0, 1, ...; indices beyond ``K`` show black.

    Examples
    --------
    >>> data = encode_palette_png(np.array([[0, 1]], np.uint8), [(0, 0, 0), (255, 0, 0)])
    >>> read_mask(data).tolist(), read_image(data)[0, 1].tolist()
    ([[0, 1]], [255, 0, 0])
    """
    from PIL import Image

    arr = np.asarray(mask)
    if arr.ndim != 2 or arr.dtype != np.uint8 or arr.size == 0:
        raise ShapeError(f"a palette PNG holds a non-empty (H, W) uint8 index image, got {arr.dtype} {arr.shape}")
    pal = np.asarray(palette)
    if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= len(pal) <= 256 or pal.min() < 0 or pal.max() > 255:
        raise ConfigError(f"palette must be 1..256 RGB triples in 0..255, got an array of shape {pal.shape}")
    full = np.zeros((256, 3), np.uint8)
    full[: len(pal)] = pal
    im = Image.fromarray(np.ascontiguousarray(arr))
    im.putpalette(full.tobytes())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def read_mask(source: ImageSource, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a label mask: the stored values, never colours.

    A palette PNG/GIF gives its indices (the class ids, as Pascal VOC and pixlearn's predicted
    masks store them), not the palette's colours; a grey mask its values (uint8 or uint16);
    an RGB(A) mask its first channel. EXIF orientation is applied as for the image.

    Returns
    -------
    ndarray of shape (H, W), uint8 or uint16

    Examples
    --------
    >>> read_mask(encode_image(np.full((2, 2), 255, np.uint8), "png")).tolist()
    [[255, 255], [255, 255]]
    """
    limit = _max_pixels(max_pixels)
    data, name = _read_source(source)
    fmt = _check_format(data, name)
    if fmt in ("PNG", "GIF", "TIFF", "BMP"):
        try:
            im = _open_pil(data, name, fmt, limit)
            if im.mode == "P":
                im.load()
                arr = np.asarray(im)
                orientation = _orientation_of(im)
                return _orient(arr, orientation) if orientation != 1 else arr
        except PixlearnError:
            raise
        except Exception as exc:
            raise ImageDecodeError(f"{name}: could not decode {fmt} ({type(exc).__name__}: {exc})") from None
    arr = _decode(data, name, "unchanged", DEFAULT_BACKGROUND, limit)
    return arr[..., 0] if arr.ndim == 3 else arr


def write_image(
    path: str | os.PathLike[str],
    image: np.ndarray,
    *,
    quality: int = 95,
    png_compression: int | None = None,
    palette: np.ndarray | Sequence[Sequence[int]] | None = None,
) -> Path:
    """Write an image atomically; the format comes from the extension.

    The file gets the permissions of any new file of the user (``0o666`` less the umask,
    0644 under the usual umask 022).

    Parameters
    ----------
    path : str or os.PathLike
        Destination ending in .png, .jpg/.jpeg, .webp, .tif/.tiff or .bmp. Missing
        parent folders are created. The file appears whole or not at all.
    image : ndarray of shape (H, W), (H, W, 3) or (H, W, 4)
        uint8 RGB(A)/grey; PNG and TIFF also take uint16.
    quality : int, default 95
        JPEG/WebP quality, 1..100.
    png_compression : int, optional
        zlib level 0..9 for PNG (1 is fast, 9 is small). None (the default) uses OpenCV's
        fast default, which is quicker than an explicit 1 at a similar size.
    palette : array-like of shape (K, 3), optional
        PNG only: write the (H, W) uint8 ``image`` as a palette PNG -- values kept as they are
        (class ids), shown in these colours (see :func:`encode_palette_png`).

    Returns
    -------
    Path
        The path written.

    Examples
    --------
    >>> import numpy as np, tempfile, os, pixlearn
    >>> out = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> pixlearn.write_image(out, np.zeros((2, 3, 3), np.uint8)).name
    'a.png'
    """
    from pixlearn.io.atomic import atomic_write_bytes

    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageWriteError(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(WRITE_FORMATS))}"
        )
    if palette is not None:
        if fmt != "png":
            raise ImageWriteError(f"{path}: a palette image is written as PNG; use the .png extension")
        data = encode_palette_png(image, palette)
    else:
        data = encode_image(image, fmt, quality=quality, png_compression=png_compression)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise ImageWriteError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
