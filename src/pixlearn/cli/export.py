"""``pixlearn export RUN --format onnx``: a run's model as one file with its preprocessing inside, checked against
the run's torch predictor before it is kept (torch and onnxruntime load only when the command runs)."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from pixlearn.cli._output import OutputFormat, emit

__all__ = ["export", "register", "ExportFormat"]


class ExportFormat(str, enum.Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    exported_program = "exported-program"


def export(
    run: Annotated[Path, typer.Argument(help="A run folder of pixlearn train classify, segment or restore (or its weights file).", show_default=False)],
    format: Annotated[ExportFormat, typer.Option("--format", help="onnx (checked in onnxruntime), torchscript (torch.jit.trace) or exported-program (torch.export).")] = ExportFormat.onnx,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the model file and its model.json (default: RUN/export/FORMAT).", show_default=False)] = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset, 17..20.", min=17, max=20)] = 17,
    images: Annotated[Optional[Path], typer.Option("--images", help="Check parity on the images in this folder instead of the run's held-out split.", show_default=False)] = None,
    tolerance: Annotated[Optional[float], typer.Option("--tolerance", help="Largest difference allowed, in (0, 255]: probabilities for classify and segment (default 1e-4), grey levels for restore (default 1).", show_default=False)] = None,
    parity_images: Annotated[int, typer.Option("--parity-images", help="Most images the parity check uses, 1..256.", min=1, max=256)] = 16,
) -> None:
    """Export a run's model as one file (ONNX, TorchScript or ExportedProgram) with its preprocessing and postprocessing inside, checked against the run's torch predictor.

    The file takes uint8 NHWC images at the run's input size (the caller resizes; /255, mean/std and the transpose
    are inside) and gives the task's outputs (softmax probabilities, argmax masks, clamped uint8 restorations),
    with a dynamic batch; model.json (the card) lies beside it.

    Parity: the written file and the run's torch predictor see the same images (those under --images DIR when
    given, else the run's held-out test or val split when its data folder is still there, else synthetic ones -- the
    card says which); the largest difference and the agreement are printed and written into model.json. When they
    differ beyond the tolerance the export fails (exit 1) and the file is left as model.onnx.failed, not as a model.

    Detection runs do not export yet.
    """
    if out is not None:
        from pixlearn.cli._output import output_dir

        output_dir(out)
    from pixlearn.export.onnx import export_run

    def log(line: str) -> None:
        sys.stderr.write(line + "\n")

    result = export_run(run, format=format.value, out=out, opset=opset, images=images, tolerance=tolerance,
                        parity_images=parity_images, log=log)
    card, parity = result.card, result.card["parity"]
    emit({
        "format": card["format"], "task": card["task"], "model": str(result.model), "card": str(result.card_path),
        "input": f"{card['input']['name']} uint8 [batch, {card['input']['height']}, {card['input']['width']}, 3]",
        "outputs": ", ".join(f"{k} {v['dtype']} {v['shape']}" for k, v in card["outputs"].items()),
        "parity images": parity["images"], "parity source": parity["kind"], "max abs diff": parity["max_abs_diff"],
        "tolerance": parity["tolerance"], f"agreement ({parity['agreement_metric']})": parity["agreement"],
        "passed": parity["passed"], "seconds": result.seconds["export"] + result.seconds["parity"],
    }, OutputFormat.table)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
