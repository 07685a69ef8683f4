"""pixlearn faces detect|align|enroll|identify|verify|list|delete|calibrate: output formats, exit codes, a bad file in a batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixlearn.cli import main


def _json(capsys: pytest.CaptureFixture[str]) -> object:
    return json.loads(capsys.readouterr().out)


def test_detect_and_align_keep_going_past_a_bad_file(tmp_path: Path, image_files, capsys) -> None:
    files = [str(image_files[k]) for k in ("astro", "bad", "two", "blank")]
    assert main(["faces", "detect", *files, "--upsample", "0", "--format", "json", "--draw", str(tmp_path / "drawn"),
                 "--landmarks"]) == 1
    rows = _json(capsys)
    assert [r["count"] for r in rows] == [1, 0, 2, 0]
    assert rows[1]["error"].startswith("ImageDecodeError") and rows[0]["error"] is None
    assert len(rows[0]["faces"][0]["landmarks"]) == 5 and Path(rows[0]["drawn"]).is_file()
    assert main(["faces", "detect", str(image_files["astro"]), "--upsample", "0", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,face,x0,y0,x1,y1,score,name,distance,error" and len(lines) == 2
    assert main(["faces", "align", str(image_files["two"]), "-o", str(tmp_path / "crops"), "--upsample", "0",
                 "--size", "64", "--format", "json"]) == 0
    crops = [f["crop"] for f in _json(capsys)[0]["faces"]]
    assert [Path(c).name for c in crops] == ["two_face1.png", "two_face2.png"]
    assert main(["faces", "detect", str(image_files["astro"]), "--upsample", "9"]) == 2  # refused by the option range


def test_enroll_identify_verify_list_delete_calibrate(tmp_path: Path, image_files, variants, capsys) -> None:
    from pixlearn.io import write_image

    gallery = str(tmp_path / "people.npz")
    up = ["--upsample", "0"]
    assert main(["faces", "identify", gallery, str(image_files["astro"])]) == 1  # no gallery yet
    assert "no such file; create one with pixlearn faces enroll" in capsys.readouterr().err
    assert main(["faces", "enroll", gallery, "Ada", str(image_files["astro"]), str(image_files["two"]),
                 str(image_files["bad"]), *up, "--format", "json"]) == 0
    result = _json(capsys)
    assert result["added"] == 1 and result["refused"] == 2
    assert main(["faces", "enroll", gallery, "../x", str(image_files["astro"])]) == 1
    assert "path or control character" in capsys.readouterr().err
    assert main(["faces", "enroll", gallery, "Bob", str(image_files["blank"]), *up]) == 1  # nothing enrolled: exit 1
    capsys.readouterr()

    drawn = tmp_path / "named"
    assert main(["faces", "identify", gallery, str(image_files["two"]), str(image_files["bad"]), *up, "--draw", str(drawn),
                 "--format", "json", "--top-k", "2"]) == 1
    rows = _json(capsys)
    assert [f["name"] for f in rows[0]["faces"]] == ["Ada", "Ada"] and rows[1]["error"]
    assert (drawn / "two.png").is_file()
    assert main(["faces", "identify", gallery, str(image_files["flipped"]), *up, "--threshold", "0.01"]) == 0
    assert "unknown" in capsys.readouterr().out
    assert main(["faces", "identify", gallery, str(image_files["flipped"]), "--threshold", "inf"]) == 1
    assert "threshold must be a finite number" in capsys.readouterr().err

    assert main(["faces", "verify", str(image_files["astro"]), str(image_files["flipped"]), *up, "--format", "json"]) == 0
    assert _json(capsys)["same"] is True
    assert main(["faces", "verify", str(image_files["astro"]), str(image_files["blank"]), *up]) == 1
    assert "image_b" in capsys.readouterr().err

    people = tmp_path / "people"
    for who, key in (("a", "astro"), ("a", "scaled"), ("b", "shifted")):
        write_image(people / who / f"{key}.png", variants[key] if key != "astro" else variants["flipped"])
    assert main(["faces", "calibrate", gallery, str(people), *up, "--format", "json"]) == 0
    cal = _json(capsys)
    assert cal["n_same"] == 1 and cal["n_different"] == 2 and "folder" in cal["source"]
    assert main(["faces", "verify", str(image_files["astro"]), str(image_files["flipped"]), "--gallery", gallery, *up,
                 "--format", "json"]) == 0
    assert _json(capsys)["threshold"] == cal["threshold"]

    assert main(["faces", "list", gallery, "--format", "json"]) == 0
    out = capsys.readouterr()
    assert [p["name"] for p in json.loads(out.out)] == ["Ada"] and "calibrated" in out.err
    assert main(["faces", "delete", gallery, "Ada", "--format", "json"]) == 0
    assert _json(capsys)["removed"] == 1
    assert main(["faces", "delete", gallery, "Ada"]) == 1
    assert "no person 'Ada'" in capsys.readouterr().err
    not_gallery = tmp_path / "x.npz"
    not_gallery.write_text("x")
    assert main(["faces", "list", str(not_gallery)]) == 1
    assert "not a pixlearn face gallery" in capsys.readouterr().err


def test_blur_faces_is_listed_with_its_ranges(capsys) -> None:
    assert main(["ops", "blur_faces", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert "upsample" in out and "[0, 3]" in out and "pixelate" in out
