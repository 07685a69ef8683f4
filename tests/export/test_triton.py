"""A Triton model repository from an ONNX export: the documented layout, and a config.pbtxt that Triton's own
``ModelConfig`` schema (``model_config.proto``, shipped in tritonclient) parses with the right types and dims."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from pixlearn._core.errors import ConfigError  # noqa: E402
from pixlearn.export.card import read_card, write_card  # noqa: E402
from pixlearn.export.triton import config_pbtxt, write_triton_repo  # noqa: E402
from tests.export.test_int8 import SIZE, make_export, smooth_images  # noqa: E402


def _model_config_pb2():
    """Triton's ``model_config_pb2`` from the tritonclient package, loaded from its file: the package's grpc
    module would import grpcio, which the http client does not need."""
    spec = importlib.util.find_spec("tritonclient")
    assert spec is not None and spec.submodule_search_locations, "tritonclient[http] is a dev dependency"
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pb2():
    return _model_config_pb2()


def _parse(pb2, text: str):
    from google.protobuf import text_format

    return text_format.Parse(text, pb2.ModelConfig())  # unknown fields or enum values raise ParseError


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_classifier_repository_has_the_documented_layout_and_a_config_triton_parses(tmp_path, pb2):
    export = make_export(tmp_path / "onnx", "classify", num_classes=3)
    repo = tmp_path / "repo"

    model_dir = write_triton_repo(export, repo, name="tiny_cls", max_batch_size=16)

    assert model_dir == repo / "tiny_cls"
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == [
        "1", "1/model.json", "1/model.onnx", "config.pbtxt", "labels.txt"]
    assert _sha(model_dir / "1" / "model.onnx") == _sha(export / "model.onnx")
    assert (model_dir / "labels.txt").read_text().splitlines() == ["c0", "c1", "c2"]
    assert read_card(model_dir / "1") == read_card(export)  # REPO/NAME/1 is an export folder too

    cfg = _parse(pb2, (model_dir / "config.pbtxt").read_text())
    assert cfg.name == "tiny_cls" and cfg.platform == "onnxruntime_onnx"
    assert cfg.default_model_filename == "model.onnx" and cfg.max_batch_size == 16
    assert cfg.HasField("dynamic_batching")
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(1, pb2.ModelInstanceGroup.KIND_AUTO)]
    (inp,) = cfg.input
    assert (inp.name, inp.data_type, list(inp.dims)) == ("images", pb2.TYPE_UINT8, [SIZE, SIZE, 3])
    (out,) = cfg.output
    assert (out.name, out.data_type, list(out.dims), out.label_filename) == (
        "probabilities", pb2.TYPE_FP32, [3], "labels.txt")

    # the served file's own signature is what the config says, with the batch axis in front
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    (i,) = session.get_inputs()
    assert i.name == inp.name and i.type == "tensor(uint8)" and list(i.shape[1:]) == list(inp.dims)
    batch = np.stack(smooth_images(cfg.max_batch_size, seed=0))
    assert session.run([out.name], {i.name: batch})[0].shape == (cfg.max_batch_size, *out.dims)


def test_segmenter_repository_names_int64_masks_and_float_probabilities(tmp_path, pb2):
    export = make_export(tmp_path / "onnx", "segment", num_classes=4)

    model_dir = write_triton_repo(export, tmp_path / "repo", name="seg-1.v2", max_batch_size=4, instances=2,
                                  device="cpu")

    cfg = _parse(pb2, (model_dir / "config.pbtxt").read_text())
    outputs = {o.name: (o.data_type, list(o.dims), o.label_filename) for o in cfg.output}
    assert outputs == {"mask": (pb2.TYPE_INT64, [SIZE, SIZE], ""),
                       "probabilities": (pb2.TYPE_FP32, [4, SIZE, SIZE], "")}
    assert [(g.count, g.kind) for g in cfg.instance_group] == [(2, pb2.ModelInstanceGroup.KIND_CPU)]
    assert not (model_dir / "labels.txt").exists()


def test_restorer_repository_names_uint8_images_out(tmp_path, pb2):
    export = make_export(tmp_path / "onnx", "restore")
    cfg = _parse(pb2, (write_triton_repo(export, tmp_path / "repo", name="denoise") / "config.pbtxt").read_text())
    (out,) = cfg.output
    assert (out.name, out.data_type, list(out.dims)) == ("restored", pb2.TYPE_UINT8, [SIZE, SIZE, 3])
    assert cfg.max_batch_size == 32


def test_int8_model_is_served_when_asked(tmp_path, pb2):
    from pixlearn.export.int8 import INT8_FILE, quantize_int8

    export = make_export(tmp_path / "onnx", "classify")
    with pytest.raises(ConfigError, match="no INT8 model"):
        write_triton_repo(export, tmp_path / "repo", name="cls", int8=True)
    quantize_int8(export, smooth_images(10, seed=1), max_drop=100.0, threads=1, timing_seconds=0.05)

    model_dir = write_triton_repo(export, tmp_path / "repo", name="cls", int8=True)

    assert _sha(model_dir / "1" / "model.onnx") == _sha(export / INT8_FILE)
    served = read_card(model_dir / "1")
    assert served["int8"]["file"] == "model.onnx" and served["int8"]["served"] is True
    _parse(pb2, (model_dir / "config.pbtxt").read_text())


def test_versions_names_and_mismatched_cards_are_refused(tmp_path):
    export = make_export(tmp_path / "onnx", "classify")
    repo = tmp_path / "repo"
    for bad in ("", ".hidden", "-x", "a/b", "a b", "x" * 129):
        with pytest.raises(ConfigError, match="Triton model name"):
            write_triton_repo(export, repo, name=bad)
    for option, value in (("max_batch_size", 0), ("max_batch_size", 1025), ("version", 0), ("instances", 0)):
        with pytest.raises(ConfigError, match=option):
            write_triton_repo(export, repo, name="m", **{option: value})
    with pytest.raises(ConfigError, match="device"):
        write_triton_repo(export, repo, name="m", device="tpu")
    assert not repo.exists()  # nothing written for a refused call

    write_triton_repo(export, repo, name="m")
    with pytest.raises(ConfigError, match="exists already"):
        write_triton_repo(export, repo, name="m")
    write_triton_repo(export, repo, name="m", version=2)
    write_triton_repo(export, repo, name="m", overwrite=True)
    assert sorted(p.name for p in (repo / "m").iterdir() if p.is_dir()) == ["1", "2"]

    card = read_card(export)
    card["outputs"] = {"logits": card["outputs"]["probabilities"]}
    write_card(export, card)
    with pytest.raises(ConfigError, match="differ from its card"):
        write_triton_repo(export, repo, name="other")
    with pytest.raises(ConfigError, match="pixlearn export RUN --format onnx"):
        write_triton_repo(tmp_path, repo, name="other")


def test_config_text_names_unknown_dtypes():
    card = {"task": "classify", "input": {"name": "images", "dtype": "uint8", "height": 8, "width": 8},
            "outputs": {"probabilities": {"dtype": "complex64", "shape": ["batch", 2]}}}
    with pytest.raises(ConfigError, match="complex64"):
        config_pbtxt(card, name="m")


def test_cli_format_triton_writes_a_repository_of_the_runs_int8_model(classify_run, tmp_path, capsys, pb2):
    import json
    import shutil

    from pixlearn.cli import main

    run = shutil.copytree(classify_run, tmp_path / "clf run")  # the session's run stays as it was
    data = json.loads((run / "manifest.json").read_text())["data"]["root"]
    repo = tmp_path / "repo"

    code = main(["export", str(run), "--format", "triton", "-o", str(repo), "--int8", "--calibration", data,
                 "--max-drop", "100", "--max-batch-size", "8"])
    out, err = capsys.readouterr()

    assert code == 0, err
    onnx_dir = run / "export" / "onnx"  # the ONNX export the repository is made from
    model_dir = repo / "clf_run"  # the run folder's name, made a valid model name
    assert _sha(model_dir / "1" / "model.onnx") == _sha(onnx_dir / "model.int8.onnx")
    cfg = _parse(pb2, (model_dir / "config.pbtxt").read_text())
    assert cfg.name == "clf_run" and cfg.max_batch_size == 8
    assert (model_dir / "labels.txt").read_text().splitlines() == read_card(onnx_dir)["class_names"]
    assert str(model_dir / "config.pbtxt") in out

    assert main(["export", str(run), "--format", "triton", "-o", str(repo), "--name", "again"]) == 0  # fp32, renamed
    assert _sha(repo / "again" / "1" / "model.onnx") == _sha(onnx_dir / "model.onnx")
