"""pixlearn export: each task's run as an ONNX file (and TorchScript, ExportedProgram) with its preprocessing and
postprocessing inside, a dynamic batch, a model card, and a parity check that refuses a file that does not match."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pixlearn._core.errors import ConfigError, ParityError, UnknownNameError
from pixlearn.cli import main
from pixlearn.io import read_image, write_image

TASK_RUNS = ["classify_run", "segment_run", "binary_segment_run", "restore_run", "sr_run"]


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _heldout(card: dict, run: Path) -> np.ndarray:
    """Three held-out images brought to the exported input size the way the card says (stretched, or one tile)."""
    from pixlearn.export.parity import fit_image, heldout_paths

    paths, _ = heldout_paths(run, card["task"])
    h, w = card["input"]["height"], card["input"]["width"]
    imgs = [fit_image(read_image(p), h, w, resize=card["input"]["resize"]) for p in paths]
    while len(imgs) < 3:
        imgs.append(imgs[-1][::-1].copy())
    return np.stack(imgs[:3])


def _torch_outputs(task: str, run: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """The run's own torch predictor, called the way pixlearn predict calls it."""
    from pixlearn.tasks.registry import task as get_task

    if task == "classify":
        clf = get_task("classify").load("load")(run)
        return {"probabilities": clf.predict_proba(clf.to_tensor(list(images))).numpy()}
    if task == "segment":
        seg = get_task("segment").load("load")(run)
        return {"probabilities": np.stack([seg.predict_proba(im) for im in images]), "mask": np.stack([seg.predict(im) for im in images])}
    res = get_task("restore").load("load")(run, tile=images.shape[1])
    return {"restored": np.stack([res.restore(im) for im in images])}


@pytest.mark.parametrize("run_fixture", TASK_RUNS)
def test_each_task_exports_and_the_file_matches_the_torch_predictor_at_batch_1_and_3(run_fixture, request, tmp_path):
    from pixlearn.export import export_run

    run = request.getfixturevalue(run_fixture)
    result = export_run(run, out=tmp_path / "onnx")
    assert result.model == tmp_path / "onnx" / "model.onnx" and result.model.is_file()
    card = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert card["parity"]["passed"] and card["parity"]["kind"] == "held-out" and card["parity"]["batches"][0] == 1

    session = _session(result.model)
    inp = session.get_inputs()[0]
    assert inp.name == "images" and inp.type == "tensor(uint8)"
    assert inp.shape[1:] == [card["input"]["height"], card["input"]["width"], 3] and not isinstance(inp.shape[0], int)
    assert [o.name for o in session.get_outputs()] == list(card["outputs"])

    images = _heldout(card, run)
    want = _torch_outputs(card["task"], run, images)
    tol = card["parity"]["tolerance"]
    for batch in (images[:1], images):  # batch 1 and batch 3 through the same file
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": batch})))
        for name, spec in card["outputs"].items():
            assert got[name].dtype == np.dtype(spec["dtype"]), name
            assert list(got[name].shape) == [len(batch), *spec["shape"][1:]], name
        compared = {"classify": "probabilities", "segment": "probabilities", "restore": "restored"}[card["task"]]
        diff = np.abs(got[compared].astype(np.float64) - want[compared][: len(batch)].astype(np.float64)).max()
        assert diff <= tol, (run_fixture, diff, tol)
        if card["task"] == "segment":  # argmax / threshold inside agrees with the predictor's mask
            assert np.mean(got["mask"] == want["mask"][: len(batch)]) >= 0.99
            np.testing.assert_allclose(got["probabilities"].sum(axis=1), 1.0, atol=1e-5)
        if card["task"] == "classify":
            np.testing.assert_allclose(got["probabilities"].sum(axis=1), 1.0, atol=1e-5)


def test_the_card_says_what_the_file_takes_and_gives_and_where_it_came_from(classify_run, tmp_path, capsys):
    from pixlearn.export import export_run, read_card
    from pixlearn.export.card import sha256_file
    from pixlearn.tasks.classify.predict import load_classifier

    lines: list[str] = []
    result = export_run(classify_run, out=tmp_path, opset=18, log=lines.append)
    card = read_card(tmp_path)
    assert card == result.card
    clf = load_classifier(classify_run)
    assert card["format"] == "onnx" and card["task"] == "classify" and card["opset"] == 18
    assert card["class_names"] == clf.classes == ["blue", "green", "red"]
    assert card["input"] == {"name": "images", "dtype": "uint8", "layout": "NHWC", "height": 12, "width": 12, "channels": 3,
                             "dynamic_batch": True, "resize": "bilinear"}
    assert card["outputs"] == {"probabilities": {"dtype": "float32", "shape": ["batch", 3]}}
    assert card["source"] == {"run": str(classify_run), "weights_sha256": sha256_file(classify_run / "weights" / "best.safetensors")}
    parity = card["parity"]
    assert parity["kind"] == "held-out" and "the run's holdout split" in parity["source"]
    assert parity["compared"] == "probabilities" and parity["agreement_metric"] == "top1" and parity["agreement"] == 1.0
    assert 0 <= parity["max_abs_diff"] <= parity["tolerance"] == 1e-4 and parity["passed"] is True
    assert card["int8"] is None and card["pixlearn_version"]
    assert any(line.startswith("parity on ") and "tolerance 0.0001" in line and "top-1 agreement" in line for line in lines)

    import onnx  # the file declares the opset it was asked for

    assert max(o.version for o in onnx.load(str(result.model)).opset_import if o.domain in ("", "ai.onnx")) == 18


def test_a_graph_that_does_not_match_the_predictor_is_refused_and_not_left_as_a_model(classify_run, tmp_path):
    from pixlearn.export.onnx import ClassifyGraph, export_source, load_source

    out = tmp_path / "onnx"
    export_source(load_source(classify_run), out=out)  # a good export first: its card must not survive the bad one
    assert (out / "model.json").is_file()

    source = load_source(classify_run)
    pre = source.predictor.preprocess
    source.graph = ClassifyGraph(source.predictor.model, [m + 0.2 for m in pre.mean], pre.std).eval()  # wrong normalisation
    with pytest.raises(ParityError, match=r"does not match the torch predictor: max \|diff\| of probabilities") as err:
        export_source(source, out=out)
    assert "tolerance 0.0001" in str(err.value)
    assert not (out / "model.onnx").exists() and not (out / "model.json").exists()
    assert (out / "model.onnx.failed").is_file()
    failed = json.loads((out / "model.json.failed").read_text())
    assert failed["parity"]["passed"] is False and failed["parity"]["max_abs_diff"] > 1e-4


def test_a_graph_whose_batch_axis_is_fixed_is_refused(restore_run, tmp_path):
    """The parity check runs batches of 1 and more, so a graph traced with a fixed batch cannot pass."""
    from pixlearn.export.onnx import RestoreGraph, export_source, load_source

    source = load_source(restore_run)

    class FixedBatch(RestoreGraph):
        def forward(self, images):
            out = super().forward(images)
            return out.reshape(2, *out.shape[1:])  # traced as a constant 2

    source.graph = FixedBatch(source.predictor.model, channels=1, scale=1, height=source.height, width=source.width).eval()
    with pytest.raises(ParityError):
        export_source(source, out=tmp_path)
    assert not (tmp_path / "model.json").exists()


@pytest.mark.parametrize("fmt, file", [("torchscript", "model.pt"), ("exported-program", "model.pt2")])
@pytest.mark.parametrize("run_fixture", ["classify_run", "restore_run"])
def test_torchscript_and_exported_program_carry_the_same_graph_and_card(fmt, file, run_fixture, request, tmp_path):
    from pixlearn.export import export_run
    from pixlearn.export.onnx import torch_runner

    run = request.getfixturevalue(run_fixture)
    result = export_run(run, format=fmt, out=tmp_path)
    assert result.model == tmp_path / file
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["format"] == fmt and card["opset"] is None and card["parity"]["passed"]
    images = _heldout(card, run)
    want = _torch_outputs(card["task"], run, images)
    name = next(iter(want)) if card["task"] != "segment" else "probabilities"
    for batch in (images[:1], images):
        got = torch_runner(result.model, fmt, list(card["outputs"]))(batch)
        assert np.abs(got[name].astype(np.float64) - want[name][: len(batch)].astype(np.float64)).max() <= card["parity"]["tolerance"]


def test_parity_images_come_from_images_dir_else_held_out_else_synthetic(restore_run, tmp_path):
    from pixlearn.export import export_run

    mine = tmp_path / "mine"
    for k in range(3):
        write_image(mine / f"m{k}.png", np.full((30, 30, 3), 40 * k, np.uint8))
    card = export_run(restore_run, out=tmp_path / "a", images=mine).card
    assert card["parity"]["kind"] == "images" and card["parity"]["images"] == 3 and str(mine) in card["parity"]["source"]

    moved = tmp_path / "run-elsewhere"  # the run without its data folder (a copy whose manifest names missing files)
    shutil.copytree(restore_run, moved)
    manifest = json.loads((moved / "manifest.json").read_text())
    manifest["data"]["splits"] = {k: [str(tmp_path / "gone" / Path(p).name) for p in v] for k, v in manifest["data"]["splits"].items()}
    (moved / "manifest.json").write_text(json.dumps(manifest))
    card = export_run(moved, out=tmp_path / "b").card
    assert card["parity"]["kind"] == "synthetic" and card["parity"]["passed"]
    assert "synthetic" in card["parity"]["source"] and "--images" in card["parity"]["source"]

    with pytest.raises(ConfigError, match="no such file or folder"):
        export_run(restore_run, out=tmp_path / "c", images=tmp_path / "nothing-here")


def test_a_weights_file_exports_into_its_run_and_checks_on_the_runs_held_out_images(restore_run):
    from pixlearn.export import export_run

    result = export_run(restore_run / "weights" / "best.safetensors", format="torchscript")
    assert result.folder == restore_run / "export" / "torchscript"
    card = result.card
    assert card["parity"]["kind"] == "held-out" and card["input"]["height"] == 24  # the run's config.yaml tile, not 256


def test_runs_that_do_not_export_are_refused_with_what_does(tmp_path, classify_run):
    from pixlearn.export import export_run

    other = tmp_path / "sk"
    (other / "weights").mkdir(parents=True)
    (other / "weights" / "model.json").write_text(json.dumps({"task": "sketchify", "format": "pixlearn.sketchify/1"}))
    with pytest.raises(ConfigError, match=r"is a 'sketchify' run.*classify, segment, restore, detect runs \(formats onnx, torchscript, exported-program\)"):
        export_run(other)
    with pytest.raises(ConfigError, match="no such run folder"):
        export_run(tmp_path / "missing")
    with pytest.raises(ConfigError, match="not a run folder"):
        export_run(tmp_path)
    classic = tmp_path / "classic"
    classic.mkdir()
    (classic / "config.yaml").write_text("method: classic\n")
    with pytest.raises(ConfigError, match="classic"):
        export_run(classic)
    with pytest.raises(UnknownNameError, match="did you mean 'onnx'"):
        export_run(classify_run, format="onxx")
    for bad in ({"opset": 16}, {"opset": 21}, {"tolerance": 0.0}, {"tolerance": float("nan")}, {"parity_images": 0}):
        with pytest.raises(ConfigError):
            export_run(classify_run, out=tmp_path / "x", **bad)
    assert not (classify_run / "export").exists()  # refused before any work
    weights_card = (classify_run / "weights" / "model.json").read_text()
    with pytest.raises(ConfigError, match="not an export card"):  # -o at the run's weights/: its card is not replaced
        export_run(classify_run, out=classify_run / "weights")
    assert (classify_run / "weights" / "model.json").read_text() == weights_card
    assert not (classify_run / "weights" / "model.onnx").exists()


def _cli(args: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exports_prints_the_parity_and_fails_loudly(segment_run, tmp_path, capsys, monkeypatch):
    code, out, err = _cli(["export", segment_run, "--format", "onnx"], capsys)
    assert code == 0, err
    folder = segment_run / "export" / "onnx"  # the default folder
    assert (folder / "model.onnx").is_file() and (folder / "model.json").is_file()
    assert "parity on 4 image(s)" in err and "tolerance 0.0001" in err and "pixel agreement" in err and "passed" in err
    assert "passed" in out and "True" in out and str(folder / "model.onnx") in out

    code, _, err = _cli(["export", segment_run, "--opset", "99"], capsys)
    assert code == 2 and "--opset" in err
    code, _, err = _cli(["export", segment_run, "--format", "tflite"], capsys)
    assert code == 2 and "onnx" in err
    code, _, err = _cli(["export", segment_run, "-o", tmp_path / "missing" / "deep"], capsys)  # checked before any work
    assert code == 1 and "does not exist" in err and not (tmp_path / "missing").exists()

    from pixlearn.export import onnx as export_onnx

    def broken(self, images):  # the mask no longer matches the probabilities, nor the predictor
        mask, probs = original(self, images)
        return mask, probs * 0.5

    original = export_onnx.SegmentGraph.forward
    monkeypatch.setattr(export_onnx.SegmentGraph, "forward", broken)
    code, out, err = _cli(["export", segment_run, "-o", tmp_path / "bad"], capsys)
    assert code == 1 and "does not match the torch predictor" in err and "FAILED" in err
    assert not (tmp_path / "bad" / "model.onnx").exists() and (tmp_path / "bad" / "model.onnx.failed").is_file()
