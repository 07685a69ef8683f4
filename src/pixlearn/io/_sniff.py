"""Recognise an image format from its first bytes, and read JPEG/PNG headers without decoding."""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ALLOWED_FORMATS", "sniff_format", "JpegHeader", "parse_jpeg_header", "parse_png_header"]

#: Formats pixlearn decodes (Pillow plugin names).
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")

# Formats we recognise in order to refuse them by name (they never reach a decoder).
_REFUSED = (
    (b"%PDF", "PDF"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x97JB2", "JBIG2"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "HDR"),
    (b"\x01\xda", "SGI"),
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
    (b"qoif", "QOI"),
    (b"\xff\x0a", "JPEG XL"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"\x8aMNG", "MNG"),
    (b"FORM", "IFF"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
)


def sniff_format(head: bytes) -> tuple[str | None, str | None]:
    """Return ``(allowed_format, refused_format)`` for the first bytes of a file.

    Exactly one of the two is set when the bytes are recognised; both are ``None``
    for bytes that are not an image pixlearn knows.

    Examples
    --------
    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n....")
    ('PNG', None)
    >>> sniff_format(b"%PDF-1.7")
    (None, 'PDF')
    """
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG", None
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG", None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF", None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP", None
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF", None
    if head[:2] == b"BM" and len(head) >= 18:
        return "BMP", None
    for magic, name in _REFUSED:
        if head.startswith(magic):
            return None, name
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return None, "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return None, "HEIF"
        return None, "ISO media (video or HEIF)"
    stripped = head.lstrip()
    if stripped[:5].lower() in (b"<?xml", b"<svg ") or stripped[:4].lower() == b"<svg":
        return None, "SVG"
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7") and head[2:3] in (b"\n", b" ", b"\r", b"\t"):
        return None, "PNM"
    return None, None


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG's markers say before its entropy-coded data."""

    width: int
    height: int
    components: int
    precision: int
    sos_offset: int  # where the first scan starts


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def parse_jpeg_header(data: bytes) -> JpegHeader | None:
    """Walk the JPEG markers up to the first scan; ``None`` when they do not parse."""
    n = len(data)
    i = 2
    size = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        if marker == 0xDA:
            if size is None:
                return None
            return JpegHeader(size[0], size[1], size[2], size[3], i)
        if marker in _SOF:
            if i + 10 > n:
                return None
            size = ((data[i + 7] << 8) | data[i + 8], (data[i + 5] << 8) | data[i + 6], data[i + 9], data[i + 4])
        i += 2 + length
    return None


def parse_png_header(data: bytes) -> tuple[int, int, int, int] | None:
    """Return ``(width, height, bit_depth, colour_type)`` from a PNG's IHDR, or ``None``."""
    if len(data) < 29 or data[12:16] != b"IHDR":
        return None
    width, height, depth, ctype = struct.unpack_from(">IIBB", data, 16)
    return width, height, depth, ctype


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """``(width, height)`` read straight from the header bytes of PNG/GIF/BMP/WebP/JPEG, else ``None``.

    Used to refuse oversized images before any decoder (including Pillow's
    plugins) sees them.
    """
    try:
        if fmt == "PNG":
            header = parse_png_header(data)
            return (header[0], header[1]) if header else None
        if fmt == "GIF" and len(data) >= 10:
            return struct.unpack_from("<HH", data, 6)
        if fmt == "BMP" and len(data) >= 26:
            (dib,) = struct.unpack_from("<I", data, 14)
            if dib == 12:
                return struct.unpack_from("<HH", data, 18)
            width, height = struct.unpack_from("<ii", data, 18)
            return abs(width), abs(height)
        if fmt == "WEBP" and len(data) >= 30:
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8L" and data[20] == 0x2F:
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
                w, h = struct.unpack_from("<HH", data, 26)
                return w & 0x3FFF, h & 0x3FFF
        if fmt == "JPEG":
            header = parse_jpeg_header(data)
            return (header.width, header.height) if header and header.height else None
    except struct.error:
        return None
    return None
