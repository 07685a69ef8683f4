"""INT8 quantisation of an exported model: it runs, it is measured, and it is refused when it costs too much."""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from pixlearn._core.errors import ConfigError, ExportError, ShapeError  # noqa: E402
from pixlearn.export.card import export_card, read_card, write_card  # noqa: E402
from pixlearn.export.int8 import INT8_FILE, Int8AccuracyError, quantize_int8  # noqa: E402

SIZE = 32
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Wrap(torch.nn.Module):
    """A network behind the export contract: uint8 NHWC in, normalisation and postprocessing inside."""

    def __init__(self, net: torch.nn.Module, task: str) -> None:
        super().__init__()
        self.net, self.task = net, task
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor):
        x = (images.permute(0, 3, 1, 2).to(torch.float32) / 255.0 - self.mean) / self.std
        y = self.net(x)
        if self.task == "classify":
            return torch.softmax(y, dim=1)
        if self.task == "segment":
            p = torch.softmax(y, dim=1)
            return torch.argmax(p, dim=1), p
        out = ((x * self.std + self.mean) + y) * 255.0
        return out.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def tiny_net(task: str, num_classes: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d
    if task == "classify":
        return torch.nn.Sequential(conv(3, 16, 3, padding=1), torch.nn.ReLU(), conv(16, 32, 3, padding=1, stride=2),
                                   torch.nn.ReLU(), conv(32, 32, 3, padding=1), torch.nn.ReLU(),
                                   torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, num_classes))
    out = num_classes if task == "segment" else 3
    return torch.nn.Sequential(conv(3, 16, 3, padding=1), torch.nn.ReLU(), conv(16, 32, 3, padding=1),
                               torch.nn.ReLU(), conv(32, out, 3, padding=1))


def make_export(folder: Path, task: str, net: torch.nn.Module | None = None, num_classes: int = 3) -> Path:
    """``folder/model.onnx`` + ``model.json`` as ``pixlearn export --format onnx`` writes them, for a tiny network."""
    net = net if net is not None else tiny_net(task, num_classes)
    wrap = _Wrap(net, task).eval()
    names = {"classify": ["probabilities"], "segment": ["mask", "probabilities"], "restore": ["restored"]}[task]
    folder.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8)
    with warnings.catch_warnings():  # the TorchScript-based exporter (what pixlearn export uses) warns it is legacy
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(wrap, (example,), str(folder / "model.onnx"), dynamo=False, input_names=["images"],
                          output_names=names, dynamic_axes={n: {0: "batch"} for n in ["images", *names]},
                          opset_version=17)
    class_names = [f"c{i}" for i in range(num_classes)] if task != "restore" else []
    card = export_card(fmt="onnx", task=task, class_names=class_names, height=SIZE, width=SIZE,
                       source={"run": f"runs/{task}/tiny", "weights_sha256": "0" * 64}, opset=17,
                       resize="bilinear" if task == "classify" else "tile",
                       parity={"images": 4, "max_abs_diff": 0.0, "tolerance": 1e-4, "agreement": 1.0, "passed": True})
    write_card(folder, card)
    return folder


def smooth_images(n: int, seed: int, size: int = SIZE) -> list[np.ndarray]:
    """Blocky colour fields with noise: structure, so that activations vary from image to image."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = rng.integers(0, 256, (4, 4, 3)).astype(np.float32)
        img = np.kron(base, np.ones((size // 4, size // 4, 1), np.float32)) + rng.normal(0, 10, (size, size, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_classifier_quantises_runs_and_its_card_has_the_int8_block(tmp_path):
    folder = make_export(tmp_path / "onnx", "classify")
    fp32_sha = _sha(folder / "model.onnx")

    report = quantize_int8(folder, smooth_images(24, seed=1), eval_images=smooth_images(12, seed=2),
                           max_drop=100.0, threads=1, timing_seconds=0.05)

    int8_path = folder / INT8_FILE
    assert int8_path.is_file()
    assert _sha(folder / "model.onnx") == fp32_sha  # the fp32 model is kept as it was
    import onnx

    model = onnx.load(str(int8_path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(init.data_type == onnx.TensorProto.INT8 for init in model.graph.initializer)  # int8 weights
    # the baked-in preprocessing stays in float: the uint8 input is not fed to a QuantizeLinear
    assert all(n.op_type != "QuantizeLinear" for n in model.graph.node if "images" in n.input)

    session = ort.InferenceSession(str(int8_path), providers=["CPUExecutionProvider"])
    batch = np.stack(smooth_images(3, seed=3))
    probs = session.run(["probabilities"], {"images": batch})[0]
    assert probs.shape == (3, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # the softmax stays float
    fp32 = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(fp32.run(["probabilities"], {"images": batch})[0] - probs).max() < 0.1

    assert report.metric == "top-1 agreement" and not report.labelled and report.held_out
    assert report.eval_images == 12 and report.calibration_images == 24
    assert report.int8_bytes < report.fp32_bytes and report.size_ratio == pytest.approx(
        report.fp32_bytes / report.int8_bytes)
    assert report.fp32_ms > 0 and report.int8_ms > 0 and report.timing_rounds >= 5 and report.threads == 1
    assert report.drop == pytest.approx(100.0 * (1.0 - report.int8))
    assert re.fullmatch(r"top-1 agreement with fp32 \d\.\d{3}, \d+\.\dx (faster|slower), \d+\.\dx smaller",
                        report.summary())

    block = read_card(folder)["int8"]
    assert block["file"] == INT8_FILE and block["sha256"] == _sha(int8_path)
    assert block["summary"] == report.summary() and block["passed"] is True
    assert block["quantization"]["format"] == "QDQ" and block["quantization"]["per_channel"] is True
    assert block["quantization"]["weights"] == "int8" and block["quantization"]["float_nodes"] > 0
    assert block["calibration"] == {"images": 24, "source": "arrays"}
    assert block["fp32_bytes"] == (folder / "model.onnx").stat().st_size


def test_labelled_classifier_reports_top1_before_and_after(tmp_path):
    folder = make_export(tmp_path / "onnx", "classify")
    images = smooth_images(10, seed=5)
    fp32 = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    predicted = fp32.run(["probabilities"], {"images": np.stack(images)})[0].argmax(axis=1)
    labels = [int(p) if i % 2 else (int(p) + 1) % 3 for i, p in enumerate(predicted)]  # fp32 right on half

    report = quantize_int8(folder, smooth_images(16, seed=4), eval_images=images, eval_targets=labels,
                           max_drop=100.0, threads=1, timing_seconds=0.05)

    assert report.metric == "top-1" and report.labelled
    assert report.fp32 == pytest.approx(0.5)
    assert report.drop == pytest.approx(100.0 * (report.fp32 - report.int8))
    assert 0.0 <= report.extra["top1_agreement"] <= 1.0
    assert re.match(r"top-1 0\.500 -> \d\.\d{3}, ", report.summary())


def _near_tie_classifier() -> torch.nn.Module:
    """Classes 0 and 1 differ by 1e-4 in most weights: fp32 ranks them by that difference, while their 8-bit
    weights come out alike (same per-channel scale), so INT8 ties them and answers class 0 -- a real drop."""
    net = tiny_net("classify", num_classes=3, seed=7)
    linear = net[-1]
    with torch.no_grad():
        w0 = linear.weight[0].clone()
        keep = torch.argmax(w0.abs())
        delta = 1e-4 * torch.sign(torch.randn(w0.shape, generator=torch.Generator().manual_seed(3)))
        delta[keep] = 0.0  # same largest weight, same per-channel scale
        linear.weight[1] = w0 + delta
        linear.weight[2] = 0.0
        linear.bias[:] = torch.tensor([0.0, 0.0, -10.0])
    return net


def test_refuses_when_the_drop_exceeds_max_drop_and_writes_nothing(tmp_path):
    folder = make_export(tmp_path / "onnx", "classify", net=_near_tie_classifier())
    before = {p.name: _sha(p) for p in folder.iterdir()}

    with pytest.raises(Int8AccuracyError) as info:
        quantize_int8(folder, smooth_images(16, seed=8), eval_images=smooth_images(32, seed=9), max_drop=5.0,
                      threads=1, timing_seconds=0.05)

    err = info.value
    assert isinstance(err, ExportError)
    assert err.report.drop > 5.0 and not err.report.passed
    message = str(err)
    assert "max_drop=5" in message and "top-1 agreement" in message and "Nothing was written" in message
    assert {p.name: _sha(p) for p in folder.iterdir()} == before  # model.onnx, model.json untouched; no int8 file
    assert read_card(folder)["int8"] is None


def test_max_drop_zero_refuses_a_real_drop(tmp_path):
    folder = make_export(tmp_path / "onnx", "classify", net=_near_tie_classifier())
    with pytest.raises(Int8AccuracyError, match="max_drop=0"):
        quantize_int8(folder, smooth_images(8, seed=8), eval_images=smooth_images(32, seed=9), max_drop=0.0,
                      threads=1, timing_seconds=0.05)
    assert not (folder / INT8_FILE).exists()


def test_segmenter_reports_miou_and_pixel_agreement(tmp_path):
    folder = make_export(tmp_path / "onnx", "segment")
    images = smooth_images(6, seed=11, size=48)  # larger than the input: the centre tile is used
    masks = [np.asarray(img[..., 0] > 128, np.int64) for img in images]

    report = quantize_int8(folder, smooth_images(10, seed=10), eval_images=images, eval_targets=masks,
                           max_drop=100.0, threads=1, timing_seconds=0.05)

    assert report.metric == "mIoU" and report.unit == "points" and report.labelled
    assert 0.0 <= report.int8 <= 1.0 and 0.0 <= report.extra["pixel_agreement"] <= 1.0
    mask = ort.InferenceSession(str(folder / INT8_FILE)).run(["mask"], {"images": np.stack(images[:2])[:, :SIZE, :SIZE]})[0]
    assert mask.shape == (2, SIZE, SIZE) and mask.dtype == np.int64


def test_restorer_reports_psnr_in_db_and_needs_clean_targets(tmp_path):
    folder = make_export(tmp_path / "onnx", "restore")
    clean = smooth_images(6, seed=12)
    rng = np.random.default_rng(0)
    noisy = [np.clip(c + rng.normal(0, 15, c.shape), 0, 255).astype(np.uint8) for c in clean]

    with pytest.raises(ConfigError, match="eval_targets"):
        quantize_int8(folder, noisy, threads=1, timing_seconds=0.05)
    assert not (folder / INT8_FILE).exists()

    # a folder of degraded/ + clean/ pairs (the restore task's paired layout) calibrates and checks
    from pixlearn.io import write_image

    pairs = tmp_path / "pairs"
    for i, (n, c) in enumerate(zip(noisy, clean, strict=True)):
        write_image(pairs / "degraded" / f"{i}.png", n)
        write_image(pairs / "clean" / f"{i}.png", c)
    write_image(pairs / "degraded" / "unpaired.png", noisy[0])  # no clean image: left out
    report = quantize_int8(folder, pairs, max_drop=100.0, threads=1, timing_seconds=0.05)
    assert report.metric == "PSNR" and report.unit == "dB" and report.labelled and report.held_out
    assert (report.calibration_images, report.eval_images) == (5, 1)
    assert report.drop == pytest.approx(report.fp32 - report.int8)
    assert math.isfinite(report.extra["psnr_int8_vs_fp32"])
    assert re.match(r"PSNR \d+\.\d\d -> \d+\.\d\d dB, ", report.summary())


@pytest.mark.parametrize(("option", "value"), [("max_drop", -1.0), ("max_drop", float("nan")), ("max_drop", 101),
                                                ("calibration_count", 0), ("calibration_count", 501),
                                                ("timing_seconds", 0.0), ("threads", 0)])
def test_options_out_of_range_are_refused_before_any_work(tmp_path, option, value):
    folder = make_export(tmp_path / "onnx", "classify")
    with pytest.raises(ConfigError, match=option):
        quantize_int8(folder, smooth_images(2, seed=0), **{option: value})
    assert not (folder / INT8_FILE).exists()


def test_inputs_that_are_not_an_export_or_not_images_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="pixlearn export RUN --format onnx"):
        quantize_int8(tmp_path, smooth_images(2, seed=0))
    folder = make_export(tmp_path / "onnx", "classify")
    with pytest.raises(ShapeError, match=r"calibration_images\[0\]"):
        quantize_int8(folder, [np.zeros((8, 8), np.float32)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no readable image"):
        quantize_int8(folder, empty)
    card = read_card(folder)
    card["task"] = "detect"
    write_card(folder, card)
    with pytest.raises(ConfigError, match="'detect'"):
        quantize_int8(folder, smooth_images(2, seed=0))


def test_calibration_folder_is_read_and_bounded(tmp_path):
    from pixlearn.io import write_image

    folder = make_export(tmp_path / "onnx", "classify")
    calib = tmp_path / "calib"
    (calib / "sub").mkdir(parents=True)
    for i, img in enumerate(smooth_images(7, seed=14, size=40)):
        write_image(calib / ("sub" if i % 2 else "") / f"{i}.png", img)
    (calib / "broken.png").write_bytes(b"not a png")

    report = quantize_int8(folder, calib, calibration_count=6, max_drop=100.0, threads=1, timing_seconds=0.05)

    # 6 readable images taken (the broken file skipped), every fifth held out for the accuracy check
    assert report.calibration_images == 5 and report.eval_images == 1 and report.held_out
    assert read_card(folder)["int8"]["calibration"]["source"] == str(calib)


def _cli(args: list, capsys) -> tuple[int, str, str]:
    from pixlearn.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export_int8_checks_on_the_runs_labelled_held_out_split(classify_run, tmp_path, capsys):
    import json
    import shutil

    run = shutil.copytree(classify_run, tmp_path / "run")  # the session's run stays as it was
    data = json.loads((run / "manifest.json").read_text())["data"]["root"]
    out = tmp_path / "onnx"

    code, stdout, err = _cli(["export", run, "-o", out, "--int8", "--calibration", data, "--max-drop", "100"], capsys)

    assert code == 0, err
    block = read_card(out)["int8"]
    assert (out / INT8_FILE).is_file() and block["file"] == INT8_FILE
    # the run's test split (images in class-named folders): top-1 against their labels
    from pixlearn.export.parity import heldout_paths

    held = heldout_paths(run, "classify")[0]
    assert block["metric"] == "top-1" and block["labelled"] and block["held_out"]
    assert block["eval_images"] == len(held) >= 2
    assert f"int8: {block['summary']}" in err and block["summary"] in stdout

    code, _, err = _cli(["export", run, "-o", out, "--int8"], capsys)
    assert code == 1 and "--int8 needs --calibration DIR" in err
    code, _, err = _cli(["export", run, "-o", out, "--calibration", data], capsys)
    assert code == 1 and "--calibration is for --int8" in err
    code, _, err = _cli(["export", run, "--format", "torchscript", "--int8", "--calibration", data], capsys)
    assert code == 1 and "use --format onnx or triton" in err


class _ResizeShuffleRestorer(torch.nn.Module):
    """A restorer with an upscaler's insides (a bicubic x2 Resize and a PixelShuffle branch) brought back to the input
    size by a stride-2 convolution: a graph onnxruntime's symbolic shape inference gives up on, which made
    quant_pre_process save its half-inferred model into the current folder."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 12, 3, padding=1))
        self.shuffle = torch.nn.PixelShuffle(2)
        self.down = torch.nn.Conv2d(3, 3, 3, padding=1, stride=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        up = self.shuffle(self.body(x)) + torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        y = x + 0.1 * self.down(up)
        return (y * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def test_quantising_leaves_the_current_folder_untouched(tmp_path, monkeypatch):
    folder = tmp_path / "onnx"
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_ResizeShuffleRestorer().eval(), (torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8),), str(folder / "model.onnx"),
                          dynamo=False, input_names=["images"], output_names=["restored"],
                          dynamic_axes={"images": {0: "batch"}, "restored": {0: "batch"}}, opset_version=17)
    write_card(folder, export_card(fmt="onnx", task="restore", class_names=[], height=SIZE, width=SIZE,
                                   source={"run": "runs/restore/tiny", "weights_sha256": "0" * 64}, opset=17, resize="tile",
                                   parity={"images": 4, "max_abs_diff": 0.0, "tolerance": 1e-4, "agreement": 1.0, "passed": True}))
    clean = smooth_images(6, seed=13)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    report = quantize_int8(folder, clean, eval_images=clean, eval_targets=clean, max_drop=100.0, threads=1, timing_seconds=0.05)

    assert (folder / INT8_FILE).is_file() and report.metric == "PSNR"
    assert sorted(p.name for p in cwd.iterdir()) == []  # no sym_shape_infer_temp.onnx, no <uuid>.data


class _X2Restorer(_ResizeShuffleRestorer):
    """The same insides kept at twice the input size: a x2 super-resolution model (output 2H x 2W)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        up = torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        y = up + 0.05 * torch.tanh(self.shuffle(self.body(x)))
        return (y * 255.0).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _x2_pairs(n: int, seed: int, low: int = 41) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(degraded, clean): clean images of 2 * ``low`` px and their 2 x 2 box-averaged halves. At 41 px the degraded
    image's centre tile starts 4 px in, the clean image's 64-px centre 9 px in: one pixel off the restored tile's 8."""
    clean = [np.ascontiguousarray(c[:2 * low, :2 * low]) for c in smooth_images(n, seed=seed, size=4 * low)]
    degraded = [c.reshape(low, 2, low, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8) for c in clean]
    return degraded, clean


def test_an_upscalers_psnr_compares_its_output_with_clean_images_of_the_output_size(tmp_path):
    folder = tmp_path / "onnx"
    folder.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(_X2Restorer().eval(), (torch.zeros(2, SIZE, SIZE, 3, dtype=torch.uint8),), str(folder / "model.onnx"),
                          dynamo=False, input_names=["images"], output_names=["restored"],
                          dynamic_axes={"images": {0: "batch"}, "restored": {0: "batch"}}, opset_version=17)
    write_card(folder, export_card(fmt="onnx", task="restore", class_names=[], height=SIZE, width=SIZE, scale=2,
                                   source={"run": "runs/restore/x2", "weights_sha256": "0" * 64}, opset=17, resize="tile",
                                   details={"mode": "RGB", "scale": 2, "restore_task": "sr"},
                                   parity={"images": 4, "max_abs_diff": 0.0, "tolerance": 1e-4, "agreement": 1.0, "passed": True}))
    low, clean = _x2_pairs(6, seed=14)

    report = quantize_int8(folder, low, eval_images=low, eval_targets=clean, max_drop=100.0, threads=1, timing_seconds=0.05)

    # the restored 64-px output against the clean 64-px window at the same place (a bicubic x2 of a box-averaged image
    # is close to its original: about 27 dB here); the clean image's own centre, a pixel off, scored about 23.4 dB
    assert report.metric == "PSNR" and report.fp32 > 25.0 and abs(report.drop) < 1.0
    # a degraded/ + clean/ folder of the same pairs (what `pixlearn export --int8 --calibration` reads) gives the same
    from pixlearn.io import write_image

    for i, (d, c) in enumerate(zip(low, clean, strict=True)):
        write_image(tmp_path / "pairs" / "degraded" / f"{i}.png", d)
        write_image(tmp_path / "pairs" / "clean" / f"{i}.png", c)
    (folder / INT8_FILE).unlink()
    report = quantize_int8(folder, tmp_path / "pairs", max_drop=100.0, threads=1, timing_seconds=0.05)
    assert report.metric == "PSNR" and report.held_out and report.fp32 > 25.0 and report.eval_images == 1


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_takes_a_calibration_set_that_does_not_fill_the_last_batch(tmp_path, method):
    """onnxruntime's histogram calibrators stack all batches' outputs into one array: 13 images in batches of 8 left
    a shorter last batch, and the collector failed with a bare numpy ValueError (inhomogeneous shape)."""
    folder = make_export(tmp_path / "onnx", "classify")

    report = quantize_int8(folder, smooth_images(13, seed=1), eval_images=smooth_images(6, seed=2), max_drop=100.0,
                           calibrate_method=method, threads=1, timing_seconds=0.05)

    assert (folder / INT8_FILE).is_file() and report.calibration_images == 13
    assert read_card(folder)["int8"]["quantization"]["calibrate_method"] == method
