"""Recipes: validated before any image is touched, callable as preprocessing, batch-applied with a report."""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest

import pixlearn
from pixlearn import ConfigError, UnknownNameError
from pixlearn.io import read_image, write_image
from pixlearn.ops.batch import process
from pixlearn.ops.recipe import Recipe, builtin_recipes


def test_step_forms_are_equivalent(photo):
    a = Recipe.from_yaml("steps:\n  - gaussian: {sigma: 1.5}\n  - canny\n")
    b = Recipe.from_dict([{"op": "gaussian", "sigma": 1.5}, {"canny": None}])
    assert a.steps == b.steps
    assert np.array_equal(a(photo), b(photo))
    # a recipe equals calling its ops by hand
    by_hand = pixlearn.ops.get_op("canny")(pixlearn.ops.get_op("gaussian")(photo, sigma=1.5))
    assert np.array_equal(a(photo), by_hand)


def test_unknown_op_suggests_closest():
    with pytest.raises(UnknownNameError, match=r"step 2.*unknown op 'cany'; did you mean 'canny'"):
        Recipe.from_yaml("steps: [gaussian, cany]", source="r.yaml")


def test_unknown_option_suggests_closest():
    with pytest.raises(UnknownNameError, match=r"r\.yaml: step 1.*'sigm'.*did you mean 'sigma'"):
        Recipe.from_yaml("steps:\n  - gaussian: {sigm: 2}\n", source="r.yaml")


def test_bad_option_value_names_step_and_type():
    with pytest.raises(ConfigError, match=r"step 1: op 'gaussian' option 'sigma': 'lots' is invalid"):
        Recipe.from_yaml("steps:\n  - gaussian: {sigma: lots}\n")


def test_structural_errors():
    with pytest.raises(ConfigError, match="non-empty list"):
        Recipe.from_yaml("name: x\n")
    with pytest.raises(UnknownNameError, match="did you mean 'steps'"):
        Recipe.from_yaml("stepz: [canny]\n")
    with pytest.raises(ConfigError, match="only be the last step"):
        Recipe.from_yaml("steps: [quality, canny]\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Recipe.from_yaml("steps: [canny\n")
    with pytest.raises(UnknownNameError, match="output format"):
        Recipe.from_yaml("steps: [canny]\noutput: {format: gif}\n")


def test_validation_happens_before_any_image_is_read(tmp_path, monkeypatch):
    write_image(tmp_path / "in" / "a.png", np.zeros((8, 8, 3), np.uint8))
    calls = []
    monkeypatch.setattr("pixlearn.ops.batch.read_image", lambda *a, **k: calls.append(a))
    with pytest.raises(UnknownNameError):
        process({"steps": ["blurr"]}, tmp_path / "in", tmp_path / "out", progress=False)
    assert calls == [] and not (tmp_path / "out").exists()


def test_recipe_is_a_plain_picklable_value(photo):
    r = Recipe.load("edges")
    clone = pickle.loads(pickle.dumps(r))
    assert clone == r and np.array_equal(clone(photo), r(photo))
    assert Recipe.from_yaml(r.to_yaml()) == r


def test_builtin_recipes_load_and_run(photo):
    names = builtin_recipes()
    assert {"edges", "quality", "colors", "thumbnail", "enhance"} <= set(names)
    for name in names:
        out = Recipe.load(name)(photo)
        assert isinstance(out, (np.ndarray, dict, list))
    with pytest.raises(UnknownNameError, match="did you mean 'edges'"):
        Recipe.load("edgs")


def _tree(tmp_path, photo):
    src = tmp_path / "in"
    write_image(src / "a.png", photo)
    write_image(src / "sub" / "b.jpg", photo)
    write_image(src / "sub" / "deeper" / "c.png", photo[::2, ::2])
    (src / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    return src


def test_process_mirrors_folders_reports_and_skips_bad_files(tmp_path, photo):
    src = _tree(tmp_path, photo)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    rep = process("edges", src, tmp_path / "out", progress=False)
    assert rep.counts == {"ok": 3, "skipped": 0, "error": 1}
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    edges = read_image(out / "a.png", mode="L")
    assert edges.shape == photo.shape[:2] and set(np.unique(edges)) <= {0, 255}
    with open(out / "report.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["status"] for r in rows].count("error") == 1
    bad = next(r for r in rows if r["status"] == "error")
    assert bad["input"].endswith("broken.jpg") and "ImageDecodeError" in bad["error"] and float(bad["ms"]) >= 0
    # nothing the user gave us changed
    assert before == {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}


def test_process_resumes_and_overwrites(tmp_path, photo):
    src = _tree(tmp_path, photo)
    process("edges", src, tmp_path / "out", progress=False)
    (tmp_path / "out" / "sub" / "b.png").unlink()  # as if interrupted before this file
    rep = process("edges", src, tmp_path / "out", progress=False)
    assert rep.counts == {"ok": 1, "skipped": 2, "error": 1}
    rep = process("edges", src, tmp_path / "out", overwrite=True, progress=False)
    assert rep.counts == {"ok": 3, "skipped": 0, "error": 1}


def test_process_in_parallel_equals_serial(tmp_path, photo):
    src = tmp_path / "in"
    for i in range(12):
        write_image(src / f"p{i:02d}.png", np.roll(photo, i * 5, axis=1))
    process("enhance", src, tmp_path / "one", progress=False)
    rep = process("enhance", src, tmp_path / "two", workers=2, progress=False, report="report.json")
    assert rep.counts["ok"] == 12
    for i in range(12):
        assert np.array_equal(read_image(tmp_path / "one" / f"p{i:02d}.png"), read_image(tmp_path / "two" / f"p{i:02d}.png"))
    report = json.loads((tmp_path / "two" / "report.json").read_text())
    assert report["summary"]["ok"] == 12 and len(report["files"]) == 12


def test_data_recipes_write_json(tmp_path, photo):
    write_image(tmp_path / "in" / "a.png", photo)
    process("colors", tmp_path / "in", tmp_path / "out", progress=False)
    colors = json.loads((tmp_path / "out" / "a.json").read_text())
    assert abs(sum(c["fraction"] for c in colors) - 1) < 1e-6


def test_same_names_from_two_places_are_both_kept(tmp_path, photo):
    write_image(tmp_path / "x" / "a.png", photo)
    write_image(tmp_path / "y" / "a.png", photo[:, ::-1])
    rep = process("thumbnail", [tmp_path / "x" / "a.png", tmp_path / "y" / "a.png"], tmp_path / "out", progress=False)
    assert rep.counts["ok"] == 2
    assert sorted(p.name for p in (tmp_path / "out").glob("*.jpg")) == ["a.jpg", "a_2.jpg"]


def test_no_images_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images found"):
        process("edges", tmp_path / "empty", tmp_path / "out", progress=False)


# ---------------------------------------------------------------- hostile recipe YAML (parsed within limits)
def _billion_laughs() -> str:
    """9 levels of 9 aliases in a recipe's description: 9**9 strings described in a few hundred bytes."""
    levels = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"&{name} [{', '.join(['*' + prev] * 9)}]")
    return "description: [" + ", ".join(levels) + "]\nsteps: [canny]\n"


HOSTILE_RECIPES = {
    "billion laughs": (_billion_laughs(), r"uses the YAML anchor &a \(line 1, column 15\).*write the values out"),
    "nested 5,000 deep": ("steps:\n  - gaussian: " + "[" * 5000 + "]" * 5000 + "\n", r"nests more than 16 levels deep"),
    "block nesting": ("steps:\n" + "".join("  " * i + "- \n" for i in range(1, 40)) + "  " * 40 + "- canny\n",
                      r"nests more than 16 levels deep"),
    "a 5,000-digit integer": ("steps:\n  - gaussian: {sigma: " + "9" * 5000 + "}\n", r"a value cannot be read"),
    "too big": ("steps: [canny]\n# " + "x" * 300_000 + "\n", r"29\d KB, over the limit of 256 KB"),
}


@pytest.mark.parametrize("case", list(HOSTILE_RECIPES))
def test_hostile_recipe_yaml_is_a_config_error_from_the_python_api(tmp_path, case):
    text, match = HOSTILE_RECIPES[case]
    with pytest.raises(ConfigError, match=r"^r\.yaml: " + match):
        Recipe.from_yaml(text, source="r.yaml")
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="^" + str(path).replace(".", r"\.") + ": " + match):
        Recipe.load(path)
    with pytest.raises(ConfigError, match=match):
        pixlearn.ops.recipe.load_recipe(str(path))


@pytest.mark.parametrize("case", ["billion laughs", "nested 5,000 deep"])
def test_hostile_recipe_yaml_is_a_one_line_error_from_the_cli(tmp_path, photo, capsys, case):
    from pixlearn.cli import main

    text, match = HOSTILE_RECIPES[case]
    write_image(tmp_path / "in" / "a.png", photo)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    code = main(["process", str(recipe), str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 1, err
    import re

    assert re.search(match, err) and "Traceback" not in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_fifo_named_as_recipe_is_refused_without_blocking(tmp_path):
    import os
    import threading

    fifo = tmp_path / "r.yaml"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            Recipe.load(fifo)
        except ConfigError as exc:
            errors.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(60)  # immediate when fixed; a plain open() would wait for a writer forever
    assert not t.is_alive(), "reading the recipe blocked on a FIFO"
    assert "not a regular file" in str(errors[0])
