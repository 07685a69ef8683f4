"""read_text on rendered text: exact strings, reading order, quadrilaterals, rotation, options and errors."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ShapeError, UnknownNameError, WeightsNotFoundError
from pixlearn.tasks.ocr.engine import OcrEngine, get_engine
from pixlearn.tasks.ocr.lines import TextLine
from pixlearn.tasks.ocr.read import read_text, read_text_oriented
from tests.ocr._render import render


@pytest.fixture(scope="module")
def engine():
    return get_engine()


# Small, nearly square canvases: PP-OCR detection scales the short side up to 736 px, so a wide strip costs much more.
@pytest.fixture(scope="module")
def sign():
    return render([(12, 100, "PIXLEARN"), (172, 100, "2026")], size=(240, 240), font_size=28)


@pytest.fixture(scope="module")
def grid():
    """Two lines of two columns, the right column a little lower, so that a sort by top corner alone would fail."""
    return render([(12, 40, "ALPHA"), (170, 46, "BRAVO"), (12, 120, "CHARLIE"), (170, 114, "DELTA")], size=(300, 200),
                  font_size=28)


def test_reads_clear_large_text_exactly(engine, sign):
    lines = read_text(sign, engine=engine)
    assert [t.text for t in lines] == ["PIXLEARN", "2026"]
    assert all(isinstance(t, TextLine) and 0.9 < t.confidence <= 1.0 for t in lines)
    assert [t.line for t in lines] == [0, 0]


def test_quadrilaterals_are_int_corners_clockwise_from_top_left_around_the_text(engine, sign):
    first = read_text(sign, engine=engine)[0]
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = first.quad
    assert all(isinstance(v, int) for p in first.quad for v in p)
    assert x0 < x1 and y1 < y2 and x2 > x3 and y3 > y0  # top-left, top-right, bottom-right, bottom-left
    bx0, by0, bx1, by1 = first.box
    ink = np.argwhere(sign[..., 0] < 128)
    ink = ink[ink[:, 1] < 165]  # the first word's pixels (rows, cols)
    assert bx0 <= ink[:, 1].min() + 2 and bx1 >= ink[:, 1].max() - 2 and by0 <= ink[:, 0].min() + 2 and by1 >= ink[:, 0].max() - 2


def test_reading_order_two_lines_two_columns(engine, grid):
    lines = read_text(grid, engine=engine)
    assert [(t.text, t.line) for t in lines] == [("ALPHA", 0), ("BRAVO", 0), ("CHARLIE", 1), ("DELTA", 1)]


def test_grey_input_reads_like_rgb(engine, sign):
    assert [t.text for t in read_text(sign[..., 0], engine=engine)] == ["PIXLEARN", "2026"]


def test_upside_down_text_is_read_with_rotation_auto_not_with_none(engine, sign):
    flipped = np.ascontiguousarray(sign[::-1, ::-1])
    assert sorted(t.text for t in read_text(flipped, engine=engine)) == ["2026", "PIXLEARN"]
    assert sorted(t.text for t in read_text(flipped, rotation="none", engine=engine)) != ["2026", "PIXLEARN"]


def test_rotation_any_finds_the_upright_turn_and_keeps_input_pixels(engine, sign):
    turned = np.ascontiguousarray(np.rot90(sign, 1))  # text turned 90° counter-clockwise: 270° clockwise
    lines, angle = read_text_oriented(turned, rotation="any", engine=engine)
    assert angle == 270
    assert [t.text for t in lines] == ["PIXLEARN", "2026"]
    h, w = turned.shape[:2]
    first = lines[0]
    assert all(0 <= x <= w and 0 <= y <= h for x, y in first.quad)
    ink = np.argwhere(turned[..., 0] < 128)
    ink = ink[ink[:, 0] > 75]  # PIXLEARN's pixels in the turned image (rows, cols): it stands in the lower part
    x0, y0, x1, y1 = first.box
    assert y1 - y0 > x1 - x0
    assert abs(y0 - ink[:, 0].min()) < 8 and abs(y1 - ink[:, 0].max()) < 8 and abs(x0 - ink[:, 1].min()) < 8


def test_min_confidence_keeps_pieces_at_or_above_it():
    class Fixed:  # an engine that always finds the same three pieces
        def detect_and_read(self, bgr, *, use_cls, max_side):
            box = lambda x: np.array([[x, 10], [x + 40, 10], [x + 40, 30], [x, 30]], float)  # noqa: E731
            return [(box(0), "low", 0.3), (box(50), "mid", 0.6), (box(100), "high", 0.95), (box(150), " ", 0.99)]

    image = np.zeros((40, 200, 3), np.uint8)
    assert [t.text for t in read_text(image, min_confidence=0.0, engine=Fixed())] == ["low", "mid", "high"]
    assert [t.text for t in read_text(image, min_confidence=0.6, engine=Fixed())] == ["mid", "high"]
    assert read_text(image, min_confidence=1.0, engine=Fixed()) == []


def test_blank_and_sliver_images_have_no_text(engine):
    assert read_text(np.full((50, 80, 3), 255, np.uint8), engine=engine) == []
    assert read_text(np.full((4, 5000, 3), 255, np.uint8), max_side=1000, engine=engine) == []


def test_a_tall_sliver_is_padded_not_blown_up_and_boxes_stay_inside():
    class Recorder:  # finds one piece reaching into the padding
        shapes: list = []

        def detect_and_read(self, bgr, *, use_cls, max_side):
            self.shapes.append(bgr.shape)
            return [(np.array([[2, 10], [300, 10], [300, 30], [2, 30]], float), "x", 0.9)]

    lines = read_text(np.full((2000, 20, 3), 255, np.uint8), engine=Recorder())
    assert Recorder.shapes == [(2000, 500, 3)]  # 4:1 at most, as rapidocr pads wide images; else 736 x 69,000 px
    assert lines[0].box == (2, 10, 20, 30)


def test_a_library_failure_is_a_pixlearn_error(engine, monkeypatch):
    from pixlearn._core.errors import PixlearnError
    from pixlearn.tasks.ocr.engine import OcrError

    def broken(*args, **kwargs):
        raise RuntimeError("onnxruntime fell over")

    monkeypatch.setattr(engine, "_ocr", broken)
    with pytest.raises(OcrError, match="failed on a 40x30 image: RuntimeError: onnxruntime fell over") as info:
        read_text(np.zeros((30, 40, 3), np.uint8), engine=engine)
    assert isinstance(info.value, PixlearnError)


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"min_confidence": 1.5}, ConfigError, "min_confidence must be a number in [0, 1], got 1.5"),
    ({"min_confidence": float("nan")}, ConfigError, "min_confidence"),
    ({"min_confidence": "high"}, ConfigError, "min_confidence"),
    ({"rotation": "auot"}, UnknownNameError, "did you mean 'auto'"),
    ({"max_side": 10}, ConfigError, "max_side must be an integer in [64, 4096], got 10"),
    ({"max_side": 100_000}, ConfigError, "max_side"),
    ({"max_side": 512.5}, ConfigError, "max_side"),
])
def test_options_are_bounded_before_any_work(kwargs, error, words):
    class Never:
        def detect_and_read(self, *a, **k):
            raise AssertionError("the engine ran")

    with pytest.raises(error, match=None) as info:
        read_text(np.zeros((32, 32, 3), np.uint8), engine=Never(), **kwargs)
    assert words in str(info.value)


@pytest.mark.parametrize("image", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 4), np.uint8),
                                   np.zeros((0, 8, 3), np.uint8), [[0, 1]]])
def test_bad_images_raise_shape_errors(image):
    with pytest.raises(ShapeError):
        read_text(image, engine=object())


def test_model_options_are_checked(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="det_model .*missing.onnx: no such file"):
        OcrEngine(det_model=tmp_path / "missing.onnx")
    (tmp_path / "keys.csv").write_text("a\n")
    with pytest.raises(ConfigError, match=r"rec_keys .*keys.csv: expected a \.txt file"):
        get_engine(rec_keys=tmp_path / "keys.csv")
    with pytest.raises(ConfigError, match="is not a file"):
        OcrEngine(rec_model=tmp_path)
    with pytest.raises(ConfigError, match=r"threads must be in \[1, 256\], got 0"):
        OcrEngine(threads=0)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="could not load the OCR models .*junk.onnx"):
        OcrEngine(det_model=tmp_path / "junk.onnx")


def test_engine_is_cached_per_options_and_shared_between_threads(engine, sign):
    assert get_engine() is engine and get_engine(threads=engine.threads) is engine
    results: list[list[str]] = []

    def work() -> None:
        results.append([t.text for t in read_text(sign[:, :165], engine=engine)])

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [["PIXLEARN"], ["PIXLEARN"]]


def test_importing_the_package_loads_no_model_library():
    code = ("import sys, pixlearn.tasks.ocr, pixlearn.tasks.ocr.lines; from pixlearn.tasks.registry import tool, "
            "task_names; spec = tool('ocr'); assert 'ocr' not in task_names(); "
            "print(sorted(m for m in ('rapidocr_onnxruntime', 'onnxruntime', 'cv2', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_registered_entry_point_resolves():
    from pixlearn.tasks.registry import tool

    spec = tool("ocr")
    for what in spec.entry:
        assert spec.load(what) is not None, what
    assert spec.load("read") is read_text
