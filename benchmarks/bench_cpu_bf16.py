"""CPU training steps in bf16 autocast against fp32, for the networks pixlearn's budgeted defaults train.

Usage: python benchmarks/bench_cpu_bf16.py [--repeat 5] [--json benchmarks/results/cpu_bf16.json]

``precision: auto`` trains in bf16 autocast on a CPU that computes bfloat16 natively (``avx512_bf16`` or
``amx_bf16`` in ``/proc/cpuinfo``; :func:`pixlearn.engine.trainer.cpu_has_bf16`). This measures why: one
optimiser step (forward, loss, backward, AdamW) of each network in fp32 (the peer) and in bf16 autocast,
interleaved so machine noise hits both, best of ``--repeat``; ratio = fp32 time / bf16 time (> 1: bf16 is
faster). The networks and sizes are what ``--minutes 10`` picks on 2 cores:

* restoration: the U-Net restorer (32 wide, 3 levels), DnCNN 10 x 32 and 15 x 32 (BN, channels_last), 16 grey
  48 px patches, L2 loss;
* segmentation: smp U-Net on ``tu-tf_efficientnet_lite0``, 8 crops of 192 px, BCE;
* classification: timm ``tf_efficientnet_lite0``, 32 images of 128 and 160 px, cross-entropy.

Weights are random (a step costs the same). Run it alone: other work on the cores changes both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import interleaved, print_table, ratio_row  # noqa: E402


def _step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Any, *, bf16: bool, channels_last: bool) -> Any:
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        loss(out.float(), y).backward()
        opt.step()

    return step


def _cases() -> list[tuple[str, Any, torch.Tensor, torch.Tensor, Any, bool]]:
    import segmentation_models_pytorch as smp
    import timm

    from pixlearn.models.restoration import DnCNN, UNetRestorer

    g = torch.Generator().manual_seed(0)
    mse, bce, ce = torch.nn.functional.mse_loss, torch.nn.functional.binary_cross_entropy_with_logits, torch.nn.functional.cross_entropy
    grey = torch.rand(16, 1, 48, 48, generator=g)
    out: list[tuple[str, Any, torch.Tensor, torch.Tensor, Any, bool]] = [
        ("restore: dncnn 10x32, 16 x 48 px", lambda: DnCNN(1, depth=10, width=32), grey, grey.clone(), mse, True),
        ("restore: dncnn 15x32, 16 x 48 px", lambda: DnCNN(1, depth=15, width=32), grey, grey.clone(), mse, True),
        ("restore: unet 32 wide, 3 levels, 16 x 48 px", lambda: UNetRestorer(1, width=32, levels=3), grey, grey.clone(), mse, True),
        ("segment: unet tu-tf_efficientnet_lite0, 8 x 192 px",
         lambda: smp.Unet("tu-tf_efficientnet_lite0", encoder_weights=None, classes=1),
         torch.rand(8, 3, 192, 192, generator=g), (torch.rand(8, 1, 192, 192, generator=g) > 0.5).float(), bce, False),
    ]
    for size in (128, 160):
        out.append((f"classify: tf_efficientnet_lite0, 32 x {size} px", lambda: timm.create_model("tf_efficientnet_lite0", num_classes=10),
                    torch.rand(32, 3, size, size, generator=g), torch.randint(0, 10, (32,), generator=g), ce, False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "cpu_bf16.json"))
    args = ap.parse_args()
    from pixlearn.engine.trainer import cpu_has_bf16

    load_before = os.getloadavg()
    rows = []
    for name, make, x, y, loss, cl in _cases():
        torch.manual_seed(0)
        bf16 = _step(make(), x, y, loss, bf16=True, channels_last=cl)
        torch.manual_seed(0)
        fp32 = _step(make(), x, y, loss, bf16=False, channels_last=cl)
        t_bf16, t_fp32 = interleaved(bf16, fp32, repeat=args.repeat)
        rows.append(ratio_row(name, t_bf16, t_fp32, "fp32 (the same step without autocast)"))
        print_table(rows[-1:])
    result = {
        "benchmark": "CPU training step, bf16 autocast (ours) vs fp32 (peer); ratio = fp32 time / bf16 time",
        "native_bf16": cpu_has_bf16(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print_table(rows)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
