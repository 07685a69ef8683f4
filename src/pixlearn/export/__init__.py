"""Export and fast inference: a trained run as an ONNX (or TorchScript, or ExportedProgram) file with its
preprocessing and postprocessing inside, a model card beside it, and a parity check against the torch run.

``card`` (the ``model.json`` of an exported model: no torch), ``onnx`` (the graphs and the writers:
:func:`export_run`), ``parity`` (the check against the run's torch predictor). Importing this package loads no
torch; the names below resolve on first use.
"""

from __future__ import annotations

from pixlearn._core.errors import ExportError, ParityError
from pixlearn._core.facade import lazy_exports

_LAZY = {
    **dict.fromkeys(("export_run", "export_onnx", "load_source", "export_source", "ExportResult", "DEFAULT_OPSET"),
                    "pixlearn.export.onnx"),
    **dict.fromkeys(("read_card", "FORMATS", "EXPORT_TASKS", "CARD_NAME", "MODEL_FILES"), "pixlearn.export.card"),
    **dict.fromkeys(("TOLERANCES",), "pixlearn.export.parity"),
}

__all__ = ["ExportError", "ParityError", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
