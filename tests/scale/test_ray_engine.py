"""``--engine ray`` against ``--engine local``: the same rows, files and reports, one model load per actor.

The only module of the suite that starts Ray: one local cluster of 2 CPUs for the whole module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pixlearn.io import write_image

pytest.importorskip("ray")

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """10 files: 9 colour images of 3 sizes in a folder and a sub-folder (two share a name), one truncated PNG."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for k in range(9):
        h, w = [(20, 24), (33, 40), (16, 16)][k % 3]
        sub = root / "sub" if k >= 6 else root
        write_image(sub / f"im{k % 7}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    good = (root / "im1.png").read_bytes()
    (root / "im5b.png").write_bytes(good[:40])  # a corrupt file
    return root


def _classify_run(root: Path) -> Path:
    import torch

    from pixlearn.models import create_model
    from pixlearn.tasks.classify.predict import model_card
    from tests.export.conftest import write_run

    torch.manual_seed(0)
    net = create_model("pixlearn_smallcnn_tiny", num_classes=3, img_size=12)
    return write_run(root / "clf", model_card(net, ["red", "green", "blue"]), net)


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory) -> Path:
    return _classify_run(tmp_path_factory.mktemp("clf"))


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory) -> Path:
    from tests.export.conftest import _segment_run

    return _segment_run(tmp_path_factory.mktemp("seg"), binary=False)


def _export(run: Path, out: Path, images: Path) -> Path:
    from pixlearn.export import export_run

    export_run(run, out=out, images=images, parity_images=4)
    return out


@pytest.fixture(scope="module")
def classify_onnx(classify_run, tmp_path_factory, images) -> Path:
    return _export(classify_run, tmp_path_factory.mktemp("clf_onnx"), images / "sub")


@pytest.fixture(scope="module")
def segment_onnx(segment_run, tmp_path_factory, images) -> Path:
    return _export(segment_run, tmp_path_factory.mktemp("seg_onnx"), images / "sub")


def _cli(*args: str):
    from pixlearn.cli.app import app

    return runner.invoke(app, [str(a) for a in args])


def _json_rows(result) -> list[dict]:
    return json.loads(result.stdout)


def _no_ids(text):
    """Decoder messages name a Python object's id (``<_io.BytesIO object at 0x7f...>``): differs run to run, locally too."""
    return re.sub(r" at 0x[0-9a-f]+", "", text) if isinstance(text, str) else text


def _same_rows(ray_rows: list[dict], local_rows: list[dict]) -> None:
    assert [r["path"] for r in ray_rows] == [r["path"] for r in local_rows]
    for a, b in zip(ray_rows, local_rows):
        a["error"], b["error"] = _no_ids(a.get("error")), _no_ids(b.get("error"))
        assert a["error"] == b["error"]
        assert a.keys() == b.keys()
        for key in a:
            if key in ("score",) and a[key] is not None:
                assert a[key] == pytest.approx(b[key], abs=1e-6)
            elif key == "top_k":
                assert [e["label"] for e in a[key]] == [e["label"] for e in b[key]]
                assert [e["score"] for e in a[key]] == pytest.approx([e["score"] for e in b[key]], abs=1e-6)
            elif key == "classes":
                assert a[key].keys() == b[key].keys()
                assert list(a[key].values()) == pytest.approx(list(b[key].values()), abs=1e-6)
            else:
                assert a[key] == b[key], key


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["run", "onnx"])
def test_predict_a_classifier_on_ray_gives_the_local_rows_and_exit_code(kind, classify_run, classify_onnx, images):
    model = classify_run if kind == "run" else classify_onnx
    local = _cli("predict", model, images, "--format", "json", "--top-k", "2", "--batch", "3", "--no-progress")
    on_ray = _cli("predict", model, images, "--format", "json", "--top-k", "2", "--batch", "3", "--engine", "ray",
                  "--workers", "2", "--no-progress")
    assert local.exit_code == on_ray.exit_code == 1, (local.output, on_ray.output)  # the corrupt file
    rows, expected = _json_rows(on_ray), _json_rows(local)
    assert len(rows) == 10
    _same_rows(rows, expected)
    bad = [r for r in rows if r["error"]]
    assert [Path(r["path"]).name for r in bad] == ["im5b.png"] and bad[0]["label"] is None
    assert "1 of 10 image(s) could not be read" in on_ray.stderr


@pytest.mark.parametrize("kind", ["run", "onnx"])
def test_predict_a_segmenter_on_ray_writes_the_local_masks_byte_for_byte(kind, segment_run, segment_onnx, images, tmp_path):
    model = segment_run if kind == "run" else segment_onnx
    local = _cli("predict", model, images, "-o", tmp_path / "local", "--overlay", "--format", "json", "--no-progress")
    on_ray = _cli("predict", model, images, "-o", tmp_path / "ray", "--overlay", "--format", "json", "--engine", "ray",
                  "--workers", "1", "--no-progress")
    assert local.exit_code == on_ray.exit_code == 1, (local.output, on_ray.output)
    rows, expected = _json_rows(on_ray), _json_rows(local)
    for r in rows + expected:  # the output folders differ by name only
        for key in ("mask", "overlay"):
            if r[key]:
                r[key] = Path(r[key]).name
    _same_rows(rows, expected)
    local_files, ray_files = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert len(local_files) == 18 and "im0-2.png" in local_files  # 9 masks + 9 overlays; two inputs named im0.png
    assert ray_files == local_files


@pytest.fixture(scope="module")
def restore_run(tmp_path_factory) -> Path:
    from tests.export.conftest import _restore_run

    return _restore_run(tmp_path_factory.mktemp("dn"), name="dncnn", in_chans=1, scale=1, options={"depth": 3, "width": 4})


@pytest.mark.parametrize("kind", ["run", "onnx"])
def test_predict_a_restorer_on_ray_writes_the_local_images_byte_for_byte(kind, restore_run, images, tmp_path):
    model = restore_run if kind == "run" else _export(restore_run, tmp_path / "onnx", images / "sub")
    local = _cli("predict", model, images, "-o", tmp_path / "local", "--format", "json", "--no-progress")
    on_ray = _cli("predict", model, images, "-o", tmp_path / "ray", "--format", "json", "--engine", "ray", "--workers", "1",
                  "--no-progress")
    assert local.exit_code == on_ray.exit_code == 1, (local.output, on_ray.output)
    rows, expected = _json_rows(on_ray), _json_rows(local)
    for r in rows + expected:
        r["seconds"] = None  # a timing
        r["output"] = r["output"] and Path(r["output"]).relative_to(tmp_path).parts[1:]  # local/... or ray/...
    _same_rows(rows, expected)
    local_files, ray_files = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert len(local_files) == 9 and "sub/im0.png" in local_files
    assert ray_files == local_files


def test_each_actor_loads_its_model_once(classify_run, images):
    from pixlearn.scale.predict import iter_ray_rows, plan_predict

    job = plan_predict(classify_run, [images] * 1, batch_size=2)
    out = list(iter_ray_rows(job, workers=2, batch_size=2))
    assert sorted(r["index"] for r in out) == list(range(10))
    assert {r["loads"] for r in out} == {1}  # 5 batches, never a second load in one actor
    assert 1 <= len({r["pid"] for r in out}) <= 2


def test_process_on_ray_gives_the_local_report_and_outputs(images, tmp_path):
    local = _cli("process", "edges", images, "-o", tmp_path / "local", "--no-progress", "--format", "json")
    on_ray = _cli("process", "edges", images, "-o", tmp_path / "ray", "--engine", "ray", "--workers", "2", "--no-progress",
                  "--format", "json")
    assert local.exit_code == on_ray.exit_code == 0, (local.output, on_ray.output)

    def rel(rows: list[dict], folder: Path) -> list[tuple]:
        return [(r["input"], str(Path(r["output"]).relative_to(folder)), r["status"], _no_ids(r["error"])) for r in rows]

    assert rel(_json_rows(on_ray), tmp_path / "ray") == rel(_json_rows(local), tmp_path / "local")
    assert sum(r["status"] == "error" for r in _json_rows(on_ray)) == 1
    local_files, ray_files = _files(tmp_path / "local"), _files(tmp_path / "ray")
    local_files.pop("report.csv"), ray_files.pop("report.csv")
    assert ray_files == local_files and len(ray_files) == 9
    # the second run resumes: everything that exists is skipped, on Ray as locally
    again = _cli("process", "edges", images, "-o", tmp_path / "ray", "--engine", "ray", "--no-progress", "--format", "json")
    assert [r["status"] for r in _json_rows(again)].count("skipped") == 9


@pytest.fixture(scope="module")
def detect_models(tmp_path_factory) -> tuple[Path, Path]:
    """A random-init Faster R-CNN run at 64 px (COCO category ids 17, 18; scores near 1/3, so many boxes) and its
    ONNX export."""
    from pixlearn.export import export_run
    from tests.export.test_export_detect import _detect_run

    run = _detect_run(tmp_path_factory.mktemp("det") / "run", "faster_rcnn", category_ids=[17, 18])
    return run, export_run(run, parity_images=1).folder


@pytest.fixture(scope="module")
def detect_images(tmp_path_factory) -> Path:
    """6 files: a truncated PNG a/p0.png sorted first, then 5 images (64 x 48: no resizing, so torch and onnxruntime
    see the same pixels), two more of them named p0.png: the unreadable file keeps its name, the others get p0-2 and
    p0-3 (the local path's names)."""
    from tests.export.test_export_detect import _images

    root = tmp_path_factory.mktemp("det_imgs")
    for k, img in enumerate(_images(5, seed=3)):
        write_image((root / "sub" if k == 4 else root) / f"p{k % 4}.png", img)
    (root / "a").mkdir()
    (root / "a" / "p0.png").write_bytes((root / "p1.png").read_bytes()[:40])
    return root


@pytest.mark.parametrize("kind, fmt", [("run", "json"), ("onnx", "csv")])
def test_predict_a_detector_on_ray_prints_the_local_results_and_draws_the_local_files(kind, fmt, detect_models,
                                                                                      detect_images, tmp_path):
    model = detect_models[0] if kind == "run" else detect_models[1]
    common = ["--format", fmt, "--max-detections", "3", "--score", "0.06", "--no-progress"]
    local = _cli("predict", model, detect_images, "-o", tmp_path / "local", *common)
    on_ray = _cli("predict", model, detect_images, "-o", tmp_path / "ray", "--engine", "ray", "--workers", "1", *common)
    assert local.exit_code == on_ray.exit_code == 1, (local.output, on_ray.output)  # the corrupt file
    assert on_ray.stderr == local.stderr.replace(str(tmp_path / "local"), str(tmp_path / "ray"))
    assert "1 of 6 image(s) could not be read" in on_ray.stderr
    local_files, ray_files = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert sorted(local_files) == [f"detections.{fmt}", "p0-2.png", "p0-3.png", "p1.png", "p2.png", "p3.png"]
    if fmt == "json":  # COCO results: same image ids, category ids, boxes and scores, byte for byte
        assert on_ray.stdout == local.stdout
        results = _json_rows(on_ray)
        assert len(results) == 5 * 3 and {r["category_id"] for r in results} <= {17, 18}  # --max-detections reached the actors
        assert sorted({r["image_id"] for r in results}) == [2, 3, 4, 5, 6]  # image 1 is the corrupt file
    else:  # the corrupt file's error row names a BytesIO's id, which differs from run to run
        assert _no_ids(on_ray.stdout) == _no_ids(local.stdout) and "a/p0.png,1,," in on_ray.stdout
        name = "detections.csv"
        assert _no_ids(ray_files.pop(name).decode()) == _no_ids(local_files.pop(name).decode())
    assert ray_files == local_files  # drawn images (and detections.json), byte for byte


def test_each_detector_actor_loads_once_and_gets_the_drivers_image_ids_and_names(detect_models, detect_images, tmp_path):
    from pixlearn.scale.predict import iter_ray_rows, plan_predict

    job = plan_predict(detect_models[1], detect_images, out=tmp_path / "drawn", max_detections=2)
    out = sorted(iter_ray_rows(job, workers=2, batch_size=2), key=lambda r: r["index"])  # 3 batches on 2 actors
    assert [r["index"] for r in out] == list(range(6))
    assert {r["loads"] for r in out} == {1} and 1 <= len({r["pid"] for r in out}) <= 2
    assert [r["row"]["image_id"] for r in out] == [1, 2, 3, 4, 5, 6]
    assert [r["row"]["drawn"] and Path(r["row"]["drawn"]).name for r in out] == [None, "p0-2.png", "p1.png", "p2.png",
                                                                                 "p3.png", "p0-3.png"]
    assert all(r["row"]["count"] == 2 for r in out[1:])


def test_a_detector_option_outside_the_exported_graph_is_refused_before_ray_works(detect_models, detect_images,
                                                                                  monkeypatch, capsys):
    import pixlearn.scale.predict as ray_engine
    from pixlearn.cli import main

    def refuse(*args, **kwargs):
        raise AssertionError("a job was sent to Ray")

    monkeypatch.setattr(ray_engine, "iter_ray_rows", refuse)
    onnx = str(detect_models[1])
    assert main(["predict", onnx, str(detect_images), "--score", "0.01", "--no-progress"]) == 1
    local = capsys.readouterr().err
    assert main(["predict", onnx, str(detect_images), "--score", "0.01", "--engine", "ray", "--no-progress"]) == 1
    assert capsys.readouterr().err == local and "below the floor 0.05" in local
