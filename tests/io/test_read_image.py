"""read_image on ordinary and awkward inputs: every refusal is a typed PixlearnError naming the input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

import pixlearn
from pixlearn import (
    ImageDecodeError,
    ImageNotFoundError,
    ImageTooLargeError,
    PixlearnError,
    UnsupportedFormatError,
    read_image,
)

from .samples import jpeg_with_orientation, pil_bytes, png_bomb, png_header_only, quadrants


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb()


@pytest.fixture
def no_decoder(monkeypatch):
    """Fail the test if a decoder (Pillow's or OpenCV's) is reached: refusals must come from the bytes alone."""
    import cv2

    def reached(*args, **kwargs):
        raise AssertionError("a decoder was reached; the input should have been refused from its header")

    monkeypatch.setattr(Image, "open", reached)
    monkeypatch.setattr(cv2, "imdecode", reached)


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- ordinary images
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF"])
def test_every_allowed_format_decodes_to_rgb_uint8(fmt):
    img = quadrants()
    out = read_image(pil_bytes(Image.fromarray(img), fmt))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    tol = 40 if fmt in ("JPEG", "WEBP") else 0
    assert np.abs(out.astype(int) - img).mean() <= max(tol / 4, 0.5 if fmt == "GIF" else 0)


def test_modes_shapes(tmp_path):
    img = quadrants()
    path = write(tmp_path, "q.png", pil_bytes(Image.fromarray(img), "PNG"))
    assert read_image(path).shape == (48, 64, 3)
    grey = read_image(path, mode="L")
    assert grey.shape == (48, 64) and grey.dtype == np.uint8
    # ITU-R 601 luma of pure red is 76 (Pillow's formula)
    assert grey[0, 0] == 76
    rgba = read_image(path, mode="RGBA")
    assert rgba.shape == (48, 64, 4) and (rgba[..., 3] == 255).all()
    assert read_image(path, mode="unchanged").shape == (48, 64, 3)


def test_unknown_mode_suggests_the_closest():
    with pytest.raises(pixlearn.UnknownNameError, match="did you mean 'RGB'"):
        read_image(b"", mode="rbg")


def test_one_by_one_png_and_jpeg():
    px = np.array([[[10, 200, 30]]], np.uint8)
    assert read_image(pil_bytes(Image.fromarray(px), "PNG")).tolist() == [[[10, 200, 30]]]
    out = read_image(pil_bytes(Image.fromarray(px), "JPEG", quality=100))
    assert out.shape == (1, 1, 3) and np.abs(out.astype(int) - px).max() <= 3


def test_bytes_file_object_and_path_agree(tmp_path):
    data = pil_bytes(Image.fromarray(quadrants()), "JPEG")
    path = write(tmp_path, "a.jpg", data)
    a = read_image(path)
    assert np.array_equal(a, read_image(data))
    assert np.array_equal(a, read_image(bytearray(data)))
    assert np.array_equal(a, read_image(io.BytesIO(data)))
    with open(path, "rb") as fh:
        assert np.array_equal(a, read_image(fh))
    assert np.array_equal(a, read_image(str(path)))


def test_jpeg_matches_pillow_decoding():
    rng = np.random.default_rng(0)
    img = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
    data = pil_bytes(Image.fromarray(img), "JPEG", quality=90)
    ours = read_image(data).astype(int)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)
    assert np.abs(ours - ref).max() <= 2
    grey = read_image(data, mode="L").astype(int)
    ref_l = np.asarray(Image.open(io.BytesIO(data)).convert("L")).astype(int)
    assert np.abs(grey - ref_l).max() <= 2


def test_format_comes_from_bytes_not_extension(tmp_path):
    path = write(tmp_path, "really_a_png.jpg", pil_bytes(Image.fromarray(quadrants()), "PNG"))
    assert np.array_equal(read_image(path), quadrants())
    assert pixlearn.image_info(path).format == "PNG"


# ---------------------------------------------------------------- orientation
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow(orientation):
    data = jpeg_with_orientation(quadrants(), orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")).astype(int)
    out = read_image(data)
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected).mean() < 1.0
    grey = read_image(data, mode="L")
    assert grey.shape == expected.shape[:2]
    assert pixlearn.image_info(data).orientation == orientation


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_on_png(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(Image.fromarray(quadrants()), "PNG", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(read_image(data), expected)


# ---------------------------------------------------------------- depth, colour spaces, alpha
def test_16bit_grey_png_scaled_by_257_not_clipped():
    values = np.array([[0, 257, 1000, 32896, 65535]], np.uint16)
    data = pil_bytes(Image.fromarray(values), "PNG")
    raw = read_image(data, mode="unchanged")
    assert raw.dtype == np.uint16 and raw.tolist() == values.tolist()
    grey = read_image(data, mode="L")
    assert grey.dtype == np.uint8 and grey.tolist() == [[0, 1, 4, 128, 255]]
    rgb = read_image(data)
    assert rgb.shape == (1, 5, 3) and rgb[0, :, 0].tolist() == [0, 1, 4, 128, 255]


def test_16bit_rgb_png_keeps_depth_in_unchanged():
    import cv2

    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[0, 0] = (65535, 0, 0)
    rgb16[1, 2] = (0, 514, 65535)
    ok, buf = cv2.imencode(".png", rgb16[..., ::-1].copy())
    assert ok
    raw = read_image(buf.tobytes(), mode="unchanged")
    assert raw.dtype == np.uint16 and np.array_equal(raw, rgb16)
    out = read_image(buf.tobytes())
    assert out.dtype == np.uint8 and out[0, 0].tolist() == [255, 0, 0] and out[1, 2].tolist() == [0, 2, 255]


def test_cmyk_jpeg_converted_to_rgb():
    cmyk = Image.new("CMYK", (16, 16), (255, 0, 0, 0))  # pure cyan ink
    out = read_image(pil_bytes(cmyk, "JPEG", quality=95))
    assert out.shape == (16, 16, 3)
    r, g, b = out.reshape(-1, 3).mean(axis=0)
    assert r < 20 and g > 235 and b > 235


def test_palette_with_transparency_composited_on_background():
    im = Image.new("P", (4, 4), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putpixel((0, 0), 1)
    data = pil_bytes(im, "PNG", transparency=0)
    rgb = read_image(data)
    assert rgb[0, 0].tolist() == [0, 0, 255]  # opaque blue index
    assert rgb[1, 1].tolist() == [255, 255, 255]  # transparent red -> white background
    assert read_image(data, background=(0, 0, 0))[1, 1].tolist() == [0, 0, 0]
    rgba = read_image(data, mode="RGBA")
    assert rgba[1, 1, 3] == 0 and rgba[0, 0, 3] == 255


def test_rgba_and_la_alpha_compositing():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 128
    out = read_image(pil_bytes(Image.fromarray(rgba), "PNG"), background=(0, 0, 0))
    assert out[0, 0].tolist() == [100, 0, 0]  # 200 * 128/255 rounded
    la = Image.fromarray(np.dstack([np.full((2, 2), 100, np.uint8), np.zeros((2, 2), np.uint8)]), "LA")
    out = read_image(pil_bytes(la, "PNG"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert read_image(pil_bytes(la, "PNG"), mode="unchanged").shape == (2, 2, 2)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert pixlearn.image_info(buf.getvalue()).frames == 3
    out = read_image(buf.getvalue())
    assert out.shape == (8, 8, 3) and out[0, 0].tolist() == [255, 0, 0]


# ---------------------------------------------------------------- refusals
def test_missing_file(tmp_path):
    with pytest.raises(ImageNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_zero_byte_file(tmp_path):
    with pytest.raises(ImageDecodeError, match=r"empty\.jpg: empty input"):
        read_image(write(tmp_path, "empty.jpg", b""))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files(tmp_path, fmt):
    rng = np.random.default_rng(1)
    data = pil_bytes(Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)), fmt)
    path = write(tmp_path, f"cut.{fmt.lower()}", data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match=r"cut\.") as info:
        read_image(path)
    assert "truncated" in str(info.value) or "corrupt" in str(info.value)


def test_random_bytes_and_renamed_text(tmp_path):
    with pytest.raises(ImageDecodeError, match="not an image"):
        read_image(write(tmp_path, "noise.png", np.random.default_rng(0).bytes(4096)))
    with pytest.raises(ImageDecodeError, match=r"notes\.jpg: not an image \(text"):
        read_image(write(tmp_path, "notes.jpg", b"shopping list: eggs, milk\n"))


@pytest.mark.parametrize(
    "data, name",
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "EPS"),
        (b"\xc5\xd0\xd3\xc6" + b"\x00" * 28, "EPS"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIF"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (b"8BPS\x00\x01" + b"\x00" * 30, "PSD"),
    ],
)
def test_formats_outside_the_allowlist_are_refused_by_name(data, name, no_decoder):
    with pytest.raises(UnsupportedFormatError, match=name):
        read_image(data)


def test_eps_never_reaches_a_decoder(monkeypatch, tmp_path):
    from PIL import EpsImagePlugin

    def boom(*a, **k):  # pragma: no cover - would mean the EPS decoder ran
        raise AssertionError("EPS plugin was called")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", boom)
    path = write(tmp_path, "evil.png", b"%!PS-Adobe-3.0 EPSF-3.0\n")
    with pytest.raises(UnsupportedFormatError, match="evil.png"):
        read_image(path)


def test_header_declaring_30000_squared_refused_before_any_decoder(tmp_path, no_decoder):
    path = write(tmp_path, "huge.png", png_header_only(30000, 30000))
    with pytest.raises(ImageTooLargeError, match=r"huge\.png: 30000x30000 = 900,000,000 pixels exceeds"):
        read_image(path)
    with pytest.raises(ImageTooLargeError):
        pixlearn.image_info(path)


def test_real_decompression_bomb_refused_before_decoding(bomb, no_decoder):
    assert len(bomb) < 300_000  # ~100 MP behind a small file
    with pytest.raises(ImageTooLargeError, match="10000x10000"):
        read_image(bomb)


def test_pixel_limit_is_configurable(monkeypatch):
    data = pil_bytes(Image.fromarray(quadrants()), "PNG")  # 48 x 64 = 3072 px
    with pytest.raises(ImageTooLargeError, match="limit of 3,000"):
        read_image(data, max_pixels=3000)
    monkeypatch.setenv("PIXLEARN_MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError, match="limit of 1,000"):
        read_image(data)
    assert read_image(data, max_pixels=4000).shape == (48, 64, 3)


def test_huge_jpeg_header_refused_without_decoding():
    data = bytearray(pil_bytes(Image.fromarray(quadrants()), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") + (20000).to_bytes(2, "big")
    with pytest.raises(ImageTooLargeError, match="20000x20000"):
        read_image(bytes(data))


def test_folder_and_wrong_source_type(tmp_path):
    with pytest.raises(ImageDecodeError, match="is a folder"):
        read_image(tmp_path)
    with pytest.raises(ImageDecodeError, match="expected a path, bytes or a binary file object"):
        read_image(12345)  # type: ignore[arg-type]
    with pytest.raises(ImageDecodeError, match="binary mode"):
        read_image(io.StringIO("text"))


# ---------------------------------------------------------------- fuzz: nothing but PixlearnError escapes
def _seeds() -> list[bytes]:
    img = Image.fromarray(quadrants(16, 16))
    seeds = [pil_bytes(img, f) for f in ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")]
    seeds.append(pil_bytes(img.convert("CMYK"), "JPEG"))
    seeds.append(pil_bytes(Image.fromarray(np.full((4, 4), 4000, np.uint16)), "PNG"))
    return seeds


def test_mutated_files_raise_only_pixlearn_errors():
    rng = np.random.default_rng(1234)
    seeds = _seeds()
    for i in range(600):
        data = bytearray(seeds[i % len(seeds)])
        how = rng.integers(3)
        if how == 0:  # flip random bytes (keep the magic so a decoder is reached)
            for _ in range(int(rng.integers(1, 8))):
                pos = int(rng.integers(8, len(data)))
                data[pos] = int(rng.integers(256))
        elif how == 1:
            data = data[: int(rng.integers(1, len(data)))]
        else:
            pos = int(rng.integers(8, len(data)))
            data[pos:pos] = rng.bytes(int(rng.integers(1, 64)))
        for mode in ("RGB", "unchanged"):
            try:
                out = read_image(bytes(data), mode=mode)
            except PixlearnError:
                continue
            assert isinstance(out, np.ndarray) and out.dtype in (np.uint8, np.uint16)


def test_a_nul_byte_fifo_or_folder_path_is_a_typed_error_and_never_blocks(tmp_path) -> None:
    import os

    from pixlearn import PixlearnError

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)  # opening it for reading without O_NONBLOCK would wait for a writer forever
    cases = {"a\x00b.jpg": "NUL byte", str(fifo): "not a regular file", str(tmp_path): "is a folder"}
    for path, words in cases.items():
        with pytest.raises(PixlearnError, match=words):
            read_image(path)
