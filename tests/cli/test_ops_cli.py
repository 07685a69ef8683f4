"""`pixlearn op`, `ops`, `process` and `demo` from the command line."""

from __future__ import annotations

import csv
import json

import numpy as np

from pixlearn.cli import main
from pixlearn.io import read_image, write_image


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_op_canny_with_options(tmp_path, photo, capsys):
    write_image(tmp_path / "in.png", photo)
    code, _, err = run(["op", "canny", tmp_path / "in.png", "-o", tmp_path / "out.png", "--low", "50", "--high", "150"], capsys)
    assert code == 0, err
    edges = read_image(tmp_path / "out.png", mode="L")
    assert edges.shape == photo.shape[:2] and 0 < (edges == 255).mean() < 0.5


def test_op_data_prints_json(tmp_path, photo, capsys):
    write_image(tmp_path / "in.png", photo)
    code, out, _ = run(["op", "dominant_colors", tmp_path / "in.png", "--k", "3"], capsys)
    assert code == 0 and len(json.loads(out)) <= 3


def test_op_errors(tmp_path, photo, capsys):
    write_image(tmp_path / "in.png", photo)
    code, _, err = run(["op", "cany", tmp_path / "in.png", "-o", tmp_path / "o.png"], capsys)
    assert code == 1 and "did you mean 'canny'" in err
    code, _, err = run(["op", "canny", tmp_path / "in.png", "-o", tmp_path / "o.png", "--lowe", "3"], capsys)
    assert code == 1 and "did you mean 'low'" in err
    code, _, err = run(["op", "canny", tmp_path / "in.png"], capsys)
    assert code == 1 and "-o OUT.png" in err
    code, _, err = run(["op", "canny", tmp_path / "missing.png", "-o", tmp_path / "o.png"], capsys)
    assert code == 1 and "no such file" in err and err.count("\n") == 1


def test_ops_lists_every_category(capsys):
    code, out, _ = run(["ops", "--format", "json"], capsys)
    rows = json.loads(out)
    cats = {r["category"] for r in rows}
    assert {"adjust", "denoise", "edges", "threshold", "segment", "morphology", "geometry", "color"} <= cats
    canny = next(r for r in rows if r["op"] == "canny")
    assert {o["name"] for o in canny["options"]} >= {"low", "high"}


def test_process_cli_exit_codes(tmp_path, photo, capsys):
    src = tmp_path / "in"
    write_image(src / "a.png", photo)
    (src / "bad.png").write_bytes(b"nope")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("steps:\n  - grayscale\n  - threshold: {value: 100}\n")
    code, out, err = run(["process", recipe, src, "--out", tmp_path / "out", "--format", "csv", "--no-progress"], capsys)
    assert code == 0 and "1 ok" in err and "1 error" in err
    rows = list(csv.DictReader(out.splitlines()))
    assert {r["status"] for r in rows} == {"ok", "error"}
    code, _, err = run(["process", recipe, src, "--out", tmp_path / "out", "--strict", "--overwrite", "--no-progress"], capsys)
    assert code == 1
    code, _, err = run(["process", recipe, src / "bad.png", "--out", tmp_path / "out2", "--no-progress"], capsys)
    assert code == 1  # nothing succeeded
    recipe.write_text("steps:\n  - grayscal\n")
    code, _, err = run(["process", recipe, src, "--out", tmp_path / "out3"], capsys)
    assert code == 1 and "did you mean 'grayscale'" in err and not (tmp_path / "out3").exists()


def test_demo_runs_end_to_end(tmp_path, capsys):
    code, out, err = run(["demo", "--out", tmp_path / "demo", "--workers", "1"], capsys)
    assert code == 0, err
    pngs = list((tmp_path / "demo" / "edges").glob("*.png"))
    assert len(pngs) == 8
    report = list(csv.DictReader(open(tmp_path / "demo" / "edges" / "report.csv")))
    assert sum(r["status"] == "error" for r in report) == 1  # the deliberately truncated sample
    scores = json.loads((tmp_path / "demo" / "quality" / "astronaut.json").read_text())
    assert 0 < scores["brightness"] < 1


def test_op_option_out_of_range_is_refused_before_any_work(tmp_path, photo, capsys):
    write_image(tmp_path / "in.png", photo)
    for flag, value, fragment in [("--sigma", "1e308", "1e+308 is out of range"), ("--sigma", "inf", "inf is not a finite number"),
                                  ("--sigma", "nan", "nan is not a finite number"), ("--ksize", "4", "4 is not odd")]:
        code, out, err = run(["op", "gaussian", tmp_path / "in.png", "-o", tmp_path / "out.png", flag, value], capsys)
        assert code == 1 and out == ""
        assert f"op 'gaussian' option '{flag[2:]}': {fragment}" in err and "expected" in err and "use a" in err, err
        assert not (tmp_path / "out.png").exists()
    small = tmp_path / "small.png"
    write_image(small, photo[:8, :8])
    code, _, err = run(["op", "median", small, "-o", tmp_path / "out.png", "--ksize", "21"], capsys)
    assert code == 1 and "too large for this 8x8" in err and "ksize=17 or less" in err
    assert not (tmp_path / "out.png").exists()


def test_ops_shows_options_with_types_defaults_and_ranges(capsys):
    code, out, err = run(["ops"], capsys)
    assert code == 0 and out.splitlines()[0].split() == ["op", "category", "returns", "options", "summary"]
    gaussian = next(line for line in out.splitlines() if line.startswith("gaussian "))
    assert "sigma=1.0 ksize=0" in gaussian and "``" not in out
    assert "pixlearn ops NAME" in err
    code, out, err = run(["ops", "gaussian"], capsys)
    assert code == 0 and "Gaussian blur" in err
    assert [line.split()[:3] for line in out.splitlines()] == [["option", "type", "default"], ["sigma", "float", "1.0"],
                                                               ["ksize", "int", "0"]]
    assert "(0, 100]" in out and "0 or odd in [1, 255]" in out
    code, out, _ = run(["ops", "clahe", "--format", "json"], capsys)
    tile = next(o for o in json.loads(out)["options"] if o["name"] == "tile")
    assert tile == {"name": "tile", "type": "tuple[int, int]", "default": [8, 8], "range": "[1, 256]", "min": 1, "max": 256}
    code, _, err = run(["ops", "gausian"], capsys)
    assert code == 1 and "did you mean 'gaussian'" in err
