"""onnxruntime vs torch eager on the same exported graph: ResNet-18, EfficientNet-Lite0 and the default U-Net, CPU.

Usage: python benchmarks/bench_onnx.py [--threads 2] [--repeat 15] [--repeat-large 5] [--seg-batch 8]
                                       [--cases resnet18,lite0,unet] [--smoke] [--json benchmarks/results/onnx.json]

Three models, each written as a run folder (``weights/model.json`` + ``best.safetensors``, as the trainers write
them) in a temporary folder and exported with pixlearn's own ``pixlearn.export.onnx.export_source`` (the function
``pixlearn export RUN`` calls; its parity check runs on synthetic images, since these runs have no data folder):

* ``resnet18``: timm ``resnet18``, 1000 classes, 224 px, random initialisation (speed does not depend on the weights);
* ``lite0``: timm ``tf_efficientnet_lite0``, 1000 classes, 224 px, from ``../shared/weights/tf_efficientnet_lite0.in1k.
  safetensors`` when that file is there, else random initialisation (the results say which);
* ``unet``: the U-Net the default segmentation recipe builds here (``pixlearn.tasks.segment.config.choose_encoder``
  with nothing named: the first light encoder with local ImageNet weights, else ``tu-resnet18``; smp's default
  decoder), binary (one sigmoid output), at 256 px -- the default crop and tile. Random initialisation.
  ``--unet-encoder`` names another (``PIXLEARN_WEIGHTS=../shared/weights`` makes the default ``tu-tf_efficientnet_lite0``).

Both sides run the SAME graph: ``ClassifyGraph`` / ``SegmentGraph`` (uint8 NHWC in; /255, mean/std, the network
and softmax -- or the mask and probabilities -- inside):

* **pixlearn / onnxruntime**: the exported ``model.onnx`` through ``pixlearn.export.runtime.load_onnx_model``
  (pixlearn's session settings: ``--threads`` intra-op threads, one inter-op thread, sequential execution); a
  classifier's ``probabilities(batch)``, a segmenter's session asked for both outputs (mask and probabilities);
* **peer / torch eager**: the same ``ExportSource.graph`` module in ``torch.inference_mode()`` with
  ``torch.set_num_threads(--threads)``.

Batch 1 and batch 32 (the U-Net: ``--seg-batch``, default 8, since 32 tiles of 256 px take tens of seconds per call
on a 2-core machine; the results say which batch ran). The same random uint8 batch goes to both. After ``--warmup``
untimed calls per side, ``--repeat`` timed calls per side are interleaved (ort, torch, torch, ort, ...; the
batch-32 rows use ``--repeat-large``); the median of each side gives the ratio torch median / onnxruntime median
(>= 1: onnxruntime faster). Targets from the issue: >= 1.3x for ResNet-18, >= 2x for Lite0 and the U-Net; the
results say met or not for every row. Outputs of both sides are compared (largest |difference|) so the timing
compares equal work. Load averages before and after are recorded (the machine may be shared).

``--smoke``: tiny settings for a few seconds of CPU (one repeat, small inputs); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved_times, print_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LITE0_WEIGHTS = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"
TARGETS = {"resnet18": 1.3, "lite0": 2.0, "unet": 2.0}


# --------------------------------------------------------------------------------------------- run folders
def _write_run(run: Path, card: dict[str, Any], model: Any) -> Path:
    from pixlearn.models import save_weights

    (run / "weights").mkdir(parents=True, exist_ok=True)
    save_weights(model, run / "weights" / "best.safetensors", metadata={"pixlearn": json.dumps(card)})
    (run / "weights" / "model.json").write_text(json.dumps(card), encoding="utf-8")
    return run


def classify_run(root: Path, name: str, *, size: int, classes: int, weights: Path | None) -> Path:
    from pixlearn.models import create_model
    from pixlearn.tasks.classify.predict import model_card

    model = create_model(name, num_classes=classes, img_size=size, weights=weights)
    return _write_run(root / name, model_card(model, [f"class_{i}" for i in range(classes)]), model)


def default_segment_encoder() -> tuple[str, str | None]:
    """The encoder the default segmentation recipe picks on this machine, and its line saying why."""
    from pixlearn.tasks.segment.config import SegmentModelConfig, choose_encoder

    upd, why = choose_encoder(SegmentModelConfig())
    return str(upd["encoder"]), why


def segment_run(root: Path, *, encoder: str, size: int) -> Path:
    from pixlearn.models import create_segmentation_model, segmentation_divisor
    from pixlearn.tasks.segment.predict import segment_model_card

    model = create_segmentation_model("unet", encoder=encoder, num_classes=1, img_size=size)
    card = segment_model_card(model, ["background", "foreground"], binary=True, tile=(size, size), overlap=0.25,
                              multiple=segmentation_divisor(model), mask_coding="binary255")
    return _write_run(root / "unet", card, model)


# --------------------------------------------------------------------------------------------- timing
def max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max()) for x, y in zip(a, b))


def bench_case(case: str, run: Path, out: Path, *, threads: int, batches: list[int], repeat: int, repeat_large: int,
               warmup: int, log: Callable[[str], None]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import torch

    from pixlearn.export.onnx import export_source, load_source
    from pixlearn.export.runtime import load_onnx_model

    source = load_source(run)
    t0 = time.perf_counter()
    result = export_source(source, format="onnx", out=out, parity_images=4, log=log)
    export_s = time.perf_counter() - t0
    big = max(batches)
    ort_model = load_onnx_model(result.folder, threads=threads, batch=big)
    graph = source.graph.eval()
    session = ort_model.session
    input_name = ort_model.input_name
    rng = np.random.default_rng(0)
    rows = []
    for b in batches:
        batch = rng.integers(0, 256, (b, source.height, source.width, 3), dtype=np.uint8)
        tensor = torch.from_numpy(batch)
        if source.task == "classify":
            def run_ort(batch: np.ndarray = batch) -> list[np.ndarray]:
                return [ort_model.probabilities(batch)]
        else:
            def run_ort(batch: np.ndarray = batch) -> list[np.ndarray]:
                return session.run(None, {input_name: batch})  # mask and probabilities, as torch computes both

        def run_torch(tensor: torch.Tensor = tensor) -> list[np.ndarray]:
            with torch.inference_mode():
                out_t = graph(tensor)
            outs = out_t if isinstance(out_t, (tuple, list)) else (out_t,)
            return [o.numpy() for o in outs]

        diff = max_diff(run_ort(), run_torch())
        reps = repeat if b == 1 else repeat_large
        t_ort, t_torch = interleaved_times(run_ort, run_torch, repeat=reps, warmup=warmup)
        m_ort, m_torch = statistics.median(t_ort), statistics.median(t_torch)
        ratio = m_torch / m_ort
        rows.append({"case": case, "batch": b, "input": f"{source.height}x{source.width}", "repeats": reps,
                     "onnxruntime_median_ms": round(m_ort * 1e3, 3), "torch_median_ms": round(m_torch * 1e3, 3),
                     "onnxruntime_ms_per_image": round(m_ort * 1e3 / b, 3), "torch_ms_per_image": round(m_torch * 1e3 / b, 3),
                     "onnxruntime_ms": [round(t * 1e3, 3) for t in t_ort], "torch_ms": [round(t * 1e3, 3) for t in t_torch],
                     "ratio_torch_over_onnxruntime": round(ratio, 3), "target": TARGETS[case], "meets_target": ratio >= TARGETS[case],
                     "max_abs_output_diff": diff})
        log(f"{case} batch {b}: onnxruntime {m_ort * 1e3:.1f} ms, torch {m_torch * 1e3:.1f} ms, ratio {ratio:.2f}")
    info = {"export_seconds": round(export_s, 2), "onnx_mb": round(result.model.stat().st_size / 1e6, 2),
            "parity": {k: result.card.get("parity", {}).get(k) for k in ("images", "max_abs_diff", "tolerance", "passed", "source")},
            "onnxruntime_threads": ort_model.threads, "torch_threads": torch.get_num_threads(),
            "onnxruntime_inter_op_threads": session.get_session_options().inter_op_num_threads}
    return rows, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads (the same on both sides)")
    ap.add_argument("--repeat", type=int, default=15, help="timed calls per side at batch 1 (interleaved)")
    ap.add_argument("--repeat-large", type=int, default=5, help="timed calls per side at the large batch")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per side first")
    ap.add_argument("--batch", type=int, default=32, help="the large batch of the classifiers")
    ap.add_argument("--seg-batch", type=int, default=8, help="the large batch of the U-Net (256-px tiles)")
    ap.add_argument("--cases", default="resnet18,lite0,unet")
    ap.add_argument("--unet-encoder", default=None, help="the U-Net's encoder (default: what the default recipe picks here; "
                                                          "with PIXLEARN_WEIGHTS=../shared/weights that is tu-tf_efficientnet_lite0)")
    ap.add_argument("--smoke", action="store_true", help="tiny inputs and one repeat: a few seconds, meaningless numbers")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "onnx.json")
    args = ap.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(TARGETS))
    if unknown:
        raise SystemExit(f"--cases: unknown {unknown}; choose from {sorted(TARGETS)}")
    cls_size, seg_size = (64, 64) if args.smoke else (224, 256)
    if args.smoke:
        args.repeat, args.repeat_large, args.warmup, args.batch, args.seg_batch = 1, 1, 1, 2, 2

    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)
    log = lambda msg: print(f"  {msg}", file=sys.stderr)  # noqa: E731
    load0 = os.getloadavg()
    rows: list[dict[str, Any]] = []
    models: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pixlearn-bench-onnx-") as tmp:
        root = Path(tmp)
        for case in cases:
            t0 = time.perf_counter()
            if case == "resnet18":
                run = classify_run(root, "resnet18", size=cls_size, classes=1000, weights=None)
                models[case] = {"timm": "resnet18", "weights": "random initialisation", "size": cls_size}
            elif case == "lite0":
                w = LITE0_WEIGHTS if LITE0_WEIGHTS.is_file() else None
                run = classify_run(root, "tf_efficientnet_lite0", size=cls_size, classes=1000, weights=w)
                models[case] = {"timm": "tf_efficientnet_lite0", "weights": str(w) if w else "random initialisation (no local weights file)",
                                "size": cls_size}
            else:
                encoder, why = (args.unet_encoder, "--unet-encoder") if args.unet_encoder else default_segment_encoder()
                run = segment_run(root, encoder=encoder, size=seg_size)
                models[case] = {"arch": "unet (smp default decoder)", "encoder": encoder, "default_recipe_says": why,
                                "weights": "random initialisation", "size": seg_size, "binary": True}
            batches = [1, args.seg_batch if case == "unet" else args.batch]
            log(f"{case}: built in {time.perf_counter() - t0:.1f} s; exporting")
            case_rows, info = bench_case(case, run, root / f"{case}_export", threads=args.threads, batches=batches,
                                         repeat=args.repeat, repeat_large=args.repeat_large, warmup=args.warmup, log=log)
            models[case].update(info)
            rows += case_rows
    load1 = os.getloadavg()
    table = [{"case": r["case"], "batch": r["batch"], "input": r["input"], "ort_ms": f"{r['onnxruntime_median_ms']:.1f}",
              "torch_ms": f"{r['torch_median_ms']:.1f}", "ratio": f"{r['ratio_torch_over_onnxruntime']:.2f}",
              "target": f">={r['target']}", "met": "yes" if r["meets_target"] else "no", "max|diff|": f"{r['max_abs_output_diff']:.2g}"}
             for r in rows]
    print_table(table)
    results = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                    "onnxruntime": ort.__version__, "cpus": os.cpu_count(),
                    "note": "CPU only; other work may have run on the machine at the same time (see the load averages)"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "threads": {"torch_intra_op": args.threads, "onnxruntime_intra_op": args.threads, "onnxruntime_inter_op": 1},
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
        "peer": "torch eager: the same ClassifyGraph/SegmentGraph module (uint8 in, normalisation and softmax/argmax inside) "
                "in torch.inference_mode()",
        "ours": "the exported model.onnx through pixlearn.export.runtime.load_onnx_model (pixlearn's session options)",
        "ratio": "torch median / onnxruntime median (>= 1: onnxruntime faster); median of interleaved calls, warm-up excluded",
        "models": models, "rows": rows,
        "smoke": bool(args.smoke),
    }
    return write_results(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
