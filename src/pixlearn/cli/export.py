"""``pixlearn export RUN --format onnx``: a run's model as one file with its preprocessing inside, checked against
the run's torch predictor before it is kept (torch and onnxruntime load only when the command runs)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pixlearn._core.errors import ConfigError
from pixlearn.cli._output import OutputFormat, emit

__all__ = ["export", "register", "ExportFormat"]


class ExportFormat(str, enum.Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    exported_program = "exported-program"
    triton = "triton"


def export(
    run: Annotated[Path, typer.Argument(help="A run folder of pixlearn train classify, segment, restore or detect (or its weights file).", show_default=False)],
    format: Annotated[ExportFormat, typer.Option("--format", help="onnx (checked in onnxruntime), torchscript (torch.jit.trace), exported-program (torch.export) or triton (the ONNX export as a Triton/KServe model repository).")] = ExportFormat.onnx,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the model file and its model.json (default: RUN/export/FORMAT); with --format triton, the model repository.", show_default=False)] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 17..20.", min=17, max=20)] = 17,
    images: Annotated[Optional[Path], typer.Option("--images", help="Check parity on the images in this folder instead of the run's held-out split.", show_default=False)] = None,
    tolerance: Annotated[Optional[float], typer.Option("--tolerance", help="Largest difference allowed, in (0, 255]: probabilities for classify and segment (default 1e-4), grey levels for restore (default 1), box coordinates in input pixels for detect (default 0.05).", show_default=False)] = None,
    parity_images: Annotated[int, typer.Option("--parity-images", help="Most images the parity check uses, 1..256.", min=1, max=256)] = 16,
    int8: Annotated[bool, typer.Option("--int8", help="Also write model.int8.onnx: static INT8 (onnxruntime, QDQ) calibrated on --calibration, refused when it loses more than --max-drop on held-out images.")] = False,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="With --int8: images like the model's inputs (restore: degraded/ + clean/ pairs of the same names).", show_default=False)] = None,
    calibration_images: Annotated[int, typer.Option("--calibration-images", help="With --int8: most calibration images used, 1..500.", min=1, max=500)] = 100,
    max_drop: Annotated[float, typer.Option("--max-drop", help="With --int8: largest accuracy drop accepted, in points (top-1, mIoU or agreement; dB of PSNR for restore), 0..100.", min=0.0, max=100.0)] = 1.0,
    name: Annotated[Optional[str], typer.Option("--name", help="With --format triton: the model's name in the repository (default: the run folder's name).", show_default=False)] = None,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="With --format triton: largest batch Triton forms, 1..1024.", min=1, max=1024)] = 32,
) -> None:
    """Export a run's model as one file (ONNX, TorchScript or ExportedProgram) with its preprocessing and postprocessing inside, checked against the run's torch predictor.

    The file takes uint8 NHWC images at the run's input size (the caller resizes; /255, mean/std and the transpose
    are inside) and gives the task's outputs (softmax probabilities, argmax masks, clamped uint8 restorations),
    with a dynamic batch; model.json (the card) lies beside it.

    Parity: the written file and the run's torch predictor see the same images (those under --images DIR when
    given, else the run's held-out test or val split when its data folder is still there, else synthetic ones -- the
    card says which); the largest difference and the agreement are printed and written into model.json. When they
    differ beyond the tolerance the export fails (exit 1) and the file is left as model.onnx.failed, not as a model.

    INT8 (--int8 --calibration DIR): model.int8.onnx beside model.onnx, with the accuracy drop on the run's held-out
    split (every fifth calibration image when the split is not on this machine), the speed and size ratios printed
    ("top-1 0.871 -> 0.866, 2.4x faster, 3.9x smaller") and written into model.json; over --max-drop it fails (exit
    1) and writes nothing.

    Triton (--format triton -o REPO): the ONNX export (in RUN/export/onnx) as REPO/NAME/config.pbtxt +
    REPO/NAME/1/model.onnx, for Triton's ONNX Runtime backend or KServe (the INT8 model with --int8).

    Detection runs export to ONNX (and triton) only, one image per call, with box decoding and NMS inside;
    --int8 refuses them.
    """
    if calibration is not None and not int8:
        raise ConfigError("--calibration is for --int8; add --int8 to quantise the exported model")
    if int8 and calibration is None:
        raise ConfigError("--int8 needs --calibration DIR: a folder of images like the model's inputs (for restore, "
                          "degraded/ and clean/ images of the same names)")
    if int8 and format not in (ExportFormat.onnx, ExportFormat.triton):
        raise ConfigError(f"--int8 quantises ONNX models; use --format onnx or triton, not {format.value}")
    triton = format is ExportFormat.triton
    if out is not None:  # with --format triton, the repository
        from pixlearn.cli._output import output_dir

        output_dir(out)
    if int8:  # refused before anything is exported (detectors)
        from pixlearn.export.int8 import check_int8_run

        check_int8_run(run)
    from pixlearn.export.onnx import export_run

    def log(line: str) -> None:
        sys.stderr.write(line + "\n")

    result = export_run(run, format="onnx" if triton else format.value, out=None if triton else out, opset=opset,
                        images=images, tolerance=tolerance, parity_images=parity_images, log=log)
    card, parity = result.card, result.card["parity"]
    rows = {
        "format": card["format"], "task": card["task"], "model": str(result.model), "card": str(result.card_path),
        "input": f"{card['input']['name']} uint8 [batch, {card['input']['height']}, {card['input']['width']}, 3]",
        "outputs": ", ".join(f"{k} {v['dtype']} {v['shape']}" for k, v in card["outputs"].items()),
        "parity images": parity["images"], "parity source": parity["kind"], "max abs diff": parity["max_abs_diff"],
        "tolerance": parity["tolerance"], f"agreement ({parity['agreement_metric']})": parity["agreement"],
        "passed": parity["passed"], "seconds": result.seconds["export"] + result.seconds["parity"],
    }
    if int8:
        from pixlearn.export.int8 import INT8_FILE, quantize_run_export

        report = quantize_run_export(run, result.folder, calibration, max_drop=max_drop,
                                     calibration_count=calibration_images)
        log(f"int8: {report.summary()}")
        rows.update({"int8 model": str(result.folder / INT8_FILE), "int8": report.summary(),
                     "int8 drop": f"{report.drop:.2f} {report.unit} of {report.metric} (max {max_drop:g})"})
    if triton:
        from pixlearn.export.triton import default_model_name, write_triton_repo

        repo = out if out is not None else result.folder.parent / "triton"
        model_dir = write_triton_repo(result.folder, repo, name=name or default_model_name(card), int8=int8,
                                      max_batch_size=max_batch_size, overwrite=True)
        rows.update({"triton repository": str(repo), "triton model": model_dir.name,
                     "triton config": str(model_dir / "config.pbtxt")})
    emit(rows, OutputFormat.table)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
