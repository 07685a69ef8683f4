"""``pixlearn ocr`` end to end: JSON, CSV and table output, -o, drawn images, a batch with a corrupt file, bad options."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from pixlearn.cli import main
from tests.ocr._render import render


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("ocr")
    Image.fromarray(render([(12, 100, "PIXLEARN"), (172, 100, "2026")], size=(240, 240), font_size=28)).save(root / "sign.png")
    (root / "more").mkdir()
    Image.fromarray(render([(20, 60, "HELLO")], size=(160, 160), font_size=28)).save(root / "more" / "sign.jpg", quality=95)
    (root / "more" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


def test_json_batch_with_a_corrupt_file_continues_and_draws(images, tmp_path, capsys):
    drawn = tmp_path / "drawn"
    code = main(["ocr", str(images / "sign.png"), str(images / "more"), "--format", "json", "--draw", str(drawn), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1 and "1 of 3 image(s) could not be read" in err
    rows = json.loads(out)
    by_name = {r["path"].split("/")[-1]: r for r in rows}
    assert [r["image_id"] for r in rows] == [1, 2, 3]
    assert by_name["sign.png"]["text"] == "PIXLEARN 2026" and by_name["sign.png"]["count"] == 2
    assert [p["text"] for p in by_name["sign.png"]["lines"]] == ["PIXLEARN", "2026"]
    assert by_name["sign.jpg"]["text"] == "HELLO"
    assert by_name["broken.png"]["error"].startswith("ImageDecodeError") and by_name["broken.png"]["lines"] == []
    piece = by_name["sign.png"]["lines"][0]
    assert set(piece) == {"text", "confidence", "line", "quad", "box"} and len(piece["quad"]) == 4
    # both "sign" stems get a drawn file; the unreadable one none
    assert sorted(p.name for p in drawn.iterdir()) == ["sign-2.jpg", "sign.png"]
    assert by_name["sign.png"]["drawn"] == str(drawn / "sign.png") and by_name["broken.png"]["drawn"] is None
    drawn_px = np.asarray(Image.open(drawn / "sign.png").convert("RGB"))
    x0, y0, x1, y1 = piece["box"]
    assert tuple(drawn_px[y0, (x0 + x1) // 2]) == (230, 25, 75)  # the quadrilateral's top edge is drawn in red


def test_csv_to_a_file_takes_the_format_from_its_extension(images, tmp_path, capsys):
    out_file = tmp_path / "text.csv"
    assert main(["ocr", str(images / "*.png"), "-o", str(out_file), "--min-confidence", "0.9"]) == 0
    assert capsys.readouterr().out == ""
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert list(rows[0]) == ["path", "image_id", "line", "text", "confidence", "x0", "y0", "x1", "y1", "x2", "y2", "x3",
                             "y3", "error"]
    assert [(r["text"], r["line"]) for r in rows] == [("PIXLEARN", "0"), ("2026", "0")]
    assert all(float(r["confidence"]) >= 0.9 for r in rows)
    assert int(rows[0]["x0"]) < int(rows[0]["x1"]) and int(rows[0]["y1"]) < int(rows[0]["y2"])


def test_table_is_the_default_on_stdout(images, capsys):
    assert main(["ocr", str(images / "more" / "sign.jpg"), "--rotation", "none"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["path", "image_id", "line", "text", "confidence"] and "HELLO" in out[1]


@pytest.mark.parametrize(("args", "words"), [
    (["--min-confidence", "2"], "min_confidence must be a number in [0, 1], got 2.0"),
    (["--rotation", "upside"], "unknown rotation 'upside'"),
    (["--max-side", "20"], "max_side must be an integer in [64, 4096], got 20"),
    (["--rec-model", "no-such-model.onnx"], "rec_model no-such-model.onnx: no such file"),
    (["-o", "/no-such-root-folder/x.json"], "the folder /no-such-root-folder does not exist"),
])
def test_bad_options_stop_before_any_image_is_read(images, args, words, capsys):
    assert main(["ocr", str(images / "sign.png"), *args]) == 1
    captured = capsys.readouterr()
    assert words in captured.err and captured.out == ""


def test_no_images_is_a_usage_error(tmp_path, capsys):
    assert main(["ocr", str(tmp_path / "*.png")]) == 2
    assert "no images found" in capsys.readouterr().err
