"""A Triton Inference Server (and KServe) model repository from an ONNX export.

:func:`write_triton_repo` turns a folder written by ``pixlearn export RUN --format onnx`` into one model of a
Triton model repository, served by Triton's ONNX Runtime backend::

    REPO/
      NAME/
        config.pbtxt          the model configuration (protobuf text format)
        labels.txt            classifiers: one class name per line, index order
        1/
          model.onnx          the exported model (fp32, or the INT8 one)
          model.json          its pixlearn card (so ``REPO/NAME/1`` is also an export folder pixlearn loads)

What it relies on, from Triton's documentation:

* the repository layout -- ``<model-repository-path>/<model-name>/[config.pbtxt] [<output-labels-file> ...]
  <version>/<model-definition-file>``, numeric version folders, and ``model.onnx`` as the ONNX Runtime backend's
  default model file name (Triton user guide, "Model Repository"; the ``default_model_filename`` field of
  ``model_config.proto`` overrides it, and is written out here to make it explicit);
* the model configuration (Triton user guide, "Model Configuration", and ``model_config.proto``, the
  ``ModelConfig`` message): ``name`` (must equal the model's folder name), ``platform: "onnxruntime_onnx"``,
  ``max_batch_size`` (> 0: the first axis of every input and output is the batch, left out of ``dims``; 0 for a
  graph of one image per call, an exported detector, whose ``dims`` are whole and whose outputs' first axis, the
  number of detections, is ``-1``),
  ``input`` / ``output`` (``ModelInput`` / ``ModelOutput``: ``name``, ``data_type`` from the ``DataType`` enum --
  ``TYPE_UINT8``, ``TYPE_INT64``, ``TYPE_FP32``, ... -- and ``dims``), ``label_filename`` on a classifier's output
  (a file in the model folder, one label per line, which Triton's classification extension reads),
  ``dynamic_batching {}`` (Triton batches concurrent requests up to ``max_batch_size``; left out when it is 0) and ``instance_group``
  (``count`` and ``kind``: ``KIND_CPU``, ``KIND_GPU`` or ``KIND_AUTO``).

KServe's Triton serving runtime loads the same repository (its ``storageUri`` points at ``REPO``), and both speak
the Open Inference Protocol v2 that ``pixlearn serve`` speaks at ``/v2``, so one client works against all three.
Writing the repository needs neither Triton nor onnx (the model's signature is read back with onnxruntime).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pixlearn._core.errors import ConfigError

__all__ = ["TRITON_TYPES", "LABELS_FILE", "write_triton_repo", "config_pbtxt", "default_model_name"]

#: The card's dtype names -> Triton's ``DataType`` enum names (``model_config.proto``).
TRITON_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}
#: A classifier's labels file, beside ``config.pbtxt``.
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.onnx"
MAX_BATCH = 1024
_KINDS = {"cpu": "KIND_CPU", "gpu": "KIND_GPU", "auto": "KIND_AUTO"}
# onnxruntime's type strings -> the card's dtype names, to check the card against the model file
_ORT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
              "tensor(uint8)": "uint8", "tensor(uint16)": "uint16", "tensor(int8)": "int8", "tensor(int16)": "int16",
              "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def write_triton_repo(
    onnx_dir: str | os.PathLike[str],
    repo: str | os.PathLike[str],
    *,
    name: str,
    max_batch_size: int = 32,
    int8: bool = False,
    version: int = 1,
    instances: int = 1,
    device: Literal["cpu", "gpu", "auto"] = "auto",
    overwrite: bool = False,
) -> Path:
    """Write ``REPO/<name>/`` (``config.pbtxt``, ``<version>/model.onnx``, labels for classifiers) from an export.

    Parameters
    ----------
    onnx_dir : path
        A folder written by ``pixlearn export RUN --format onnx`` (``model.onnx`` and ``model.json``).
    repo : path
        The model repository (created when missing); other models in it are left alone.
    name : str
        The model's name on the server and its folder's name: letters, digits, ``_``, ``.``, ``-`` (1-128
        characters, not starting with ``.`` or ``-``).
    max_batch_size : int, default 32
        The largest batch Triton forms (1 to 1024); requests are batched dynamically up to it.
    int8 : bool, default False
        Serve the INT8 model (``model.int8.onnx``, written by :func:`pixlearn.export.int8.quantize_int8`).
    version : int, default 1
        The version folder (1 to 2**31 - 1).
    instances : int, default 1
        Model instances Triton runs (``instance_group`` ``count``, 1 to 64).
    device : {"cpu", "gpu", "auto"}
        Where the instances run (``KIND_CPU``, ``KIND_GPU``, ``KIND_AUTO``: a GPU when there is one).
    overwrite : bool, default False
        Replace ``REPO/<name>/<version>`` when it exists (otherwise that is an error).

    Returns
    -------
    Path
        ``REPO/<name>``.

    Raises
    ------
    ConfigError
        Not an ONNX export, a model file whose inputs/outputs differ from its card, an option out of range, a
        version that exists already, or ``int8`` without an INT8 model.

    Examples
    --------
    >>> write_triton_repo("runs/classify/cats/export/onnx", "models", name="cats")  # doctest: +SKIP
    PosixPath('models/cats')
    """
    from pixlearn.export.card import read_onnx_export

    folder = Path(onnx_dir)
    if not _NAME.fullmatch(name or "") or name.startswith("-"):
        raise ConfigError(f"model name {name!r} is not a valid Triton model name: use 1-128 letters, digits, '_', "
                          "'.' or '-', not starting with '.' or '-' (e.g. 'cats_v1')")
    max_batch_size = _check_int("max_batch_size", max_batch_size, 1, MAX_BATCH)
    version = _check_int("version", version, 1, 2**31 - 1)
    instances = _check_int("instances", instances, 1, 64)
    if device not in _KINDS:
        raise ConfigError(f"device={device!r} is not one of {', '.join(_KINDS)}")
    card = read_onnx_export(folder, purpose="a Triton repository")
    model_file = folder / MODEL_FILE
    if int8:
        block = card.get("int8")
        if not isinstance(block, dict) or not (folder / str(block.get("file", ""))).is_file():
            raise ConfigError(f"{folder}: no INT8 model there; quantise the export first "
                              "(`pixlearn export RUN --format onnx --int8 --calibration DIR`)")
        model_file = folder / str(block["file"])
    _check_signature(model_file, card)

    model_dir = Path(repo) / name
    version_dir = model_dir / str(version)
    if version_dir.exists() and not overwrite:
        raise ConfigError(f"{version_dir} exists already; pass another version (--version N) or overwrite it")
    version_dir.mkdir(parents=True, exist_ok=True)
    _copy(model_file, version_dir / MODEL_FILE)
    served = dict(card)
    if int8:  # the card beside the served file describes that file: the INT8 model is model.onnx there
        served["int8"] = {**card["int8"], "file": MODEL_FILE, "served": True}
    from pixlearn.export.card import write_card

    write_card(version_dir, served)
    labels = card.get("task") == "classify" and bool(card.get("class_names"))
    if labels:
        from pixlearn.io.atomic import atomic_write_text

        atomic_write_text(model_dir / LABELS_FILE, "".join(f"{c}\n" for c in card["class_names"]))
    text = config_pbtxt(card, name=name, max_batch_size=max_batch_size, instances=instances, device=device,
                        label_filename=LABELS_FILE if labels else None)
    from pixlearn.io.atomic import atomic_write_text

    atomic_write_text(model_dir / "config.pbtxt", text)
    return model_dir


def default_model_name(card: dict[str, Any]) -> str:
    """A valid model name from the card's run folder: characters Triton does not take become ``_``.

    >>> default_model_name({"source": {"run": "runs/classify/my cats (v2)"}})
    'my_cats__v2_'
    """
    raw = Path(str((card.get("source") or {}).get("run") or "model")).name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", raw).lstrip(".-")[:128]
    return cleaned or "model"


def config_pbtxt(
    card: dict[str, Any],
    *,
    name: str,
    max_batch_size: int = 32,
    instances: int = 1,
    device: str = "auto",
    label_filename: str | None = None,
) -> str:
    """The ``config.pbtxt`` text (protobuf text format of Triton's ``ModelConfig``) for an export's card.

    >>> card = {"task": "classify", "input": {"name": "images", "dtype": "uint8", "height": 32, "width": 32},
    ...         "outputs": {"probabilities": {"dtype": "float32", "shape": ["batch", 2]}}}
    >>> print(config_pbtxt(card, name="cats", max_batch_size=8).splitlines()[1])
    name: "cats"
    """
    inp = card["input"]
    channels = int(inp.get("channels", 3))
    # a graph of one image per call (a detector): no batch axis for Triton (max_batch_size 0, full dims, no batching)
    batched = bool(inp.get("dynamic_batch", True))
    in_dims = f"{int(inp['height'])}, {int(inp['width'])}, {channels}" if batched else f"1, {int(inp['height'])}, {int(inp['width'])}, {channels}"
    origin = " ".join(str((card.get("source") or {}).get("run", "?")).split())  # one line, whatever the path holds
    lines = [
        f"# Written by pixlearn {card.get('pixlearn_version', '')} from {origin} ({card.get('task')}): "
        "uint8 NHWC pixels in, preprocessing and postprocessing inside the graph.",
        f'name: "{name}"',
        'platform: "onnxruntime_onnx"',
        f'default_model_filename: "{MODEL_FILE}"',
        f"max_batch_size: {int(max_batch_size) if batched else 0}",
        "input [",
        "  {",
        f'    name: "{inp.get("name", "images")}"',
        f"    data_type: {_triton_type(inp.get('dtype', 'uint8'), 'input')}",
        f"    dims: [ {in_dims} ]",
        "  }",
        "]",
        "output [",
    ]
    outputs = list(card["outputs"].items())
    for i, (out_name, spec) in enumerate(outputs):
        dims = [int(d) if isinstance(d, int) else -1 for d in list(spec["shape"])[1 if batched else 0:]]
        lines += [
            "  {",
            f'    name: "{out_name}"',
            f"    data_type: {_triton_type(spec['dtype'], out_name)}",
            f"    dims: [ {', '.join(str(d) for d in dims)} ]",
        ]
        if label_filename and out_name == "probabilities":
            lines.append(f'    label_filename: "{label_filename}"')
        lines.append("  }," if i < len(outputs) - 1 else "  }")
    lines += ["]", *(["dynamic_batching { }"] if batched else []), "instance_group ["]
    lines += [
        "  {",
        f"    count: {int(instances)}",
        f"    kind: {_KINDS[device]}",
        "  }",
        "]",
    ]
    return "\n".join(lines) + "\n"


def _triton_type(dtype: str, what: str) -> str:
    try:
        return TRITON_TYPES[str(dtype)]
    except KeyError:
        raise ConfigError(f"{what}: dtype {dtype!r} has no Triton data type; known: {', '.join(TRITON_TYPES)}") from None


def _check_int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name}={value!r} is out of range: expected a whole number from {low} to {high}")
    return value


def _check_signature(model_file: Path, card: dict[str, Any]) -> None:
    """The model file's inputs and outputs must be the card's (names, dtypes, ranks), or Triton refuses to load it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        raise ConfigError(f"{model_file}: onnxruntime cannot open it ({exc}); export the run again") from None
    wanted = {card["input"].get("name", "images"): (card["input"].get("dtype", "uint8"), 4)}
    wanted.update({k: (v["dtype"], len(v["shape"])) for k, v in card["outputs"].items()})
    found = {a.name: (_ORT_TYPES.get(a.type, a.type), len(a.shape)) for a in [*session.get_inputs(), *session.get_outputs()]}
    if found != wanted:
        raise ConfigError(f"{model_file}: its inputs and outputs {found} differ from its card's {wanted}; export the "
                          "run again")


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
