"""precision "auto": bf16 autocast on a CPU with native bfloat16, fp32 otherwise; the budget probes time the same steps."""

from __future__ import annotations

import pytest
import torch

from pixlearn.engine import trainer
from pixlearn.engine.trainer import CPU_BF16_ENV, auto_precision, cpu_has_bf16, cpuinfo_has_bf16, probe_autocast, resolve_hardware


def test_cpuinfo_flags_decide_native_bf16() -> None:
    assert cpuinfo_has_bf16("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert cpuinfo_has_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not cpuinfo_has_bf16("flags : fpu sse avx2 avx512f avx512bw\n")  # AVX-512 alone emulates bf16
    assert not cpuinfo_has_bf16("Features : fp asimd\n")  # no x86 flags line
    assert not cpuinfo_has_bf16("")


@pytest.mark.parametrize(("env", "expected"), [("0", False), ("off", False), ("1", True), ("yes", True)])
def test_the_environment_overrides_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, env: str, expected: bool) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, env)
    assert cpu_has_bf16() is expected
    assert auto_precision("cpu") == ("bf16" if expected else "32")


def test_without_the_environment_the_cpu_flags_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(trainer, "_this_cpu_has_bf16", lambda: True)
    assert auto_precision("cpu") == "bf16"
    assert auto_precision("cpu", cpu_bf16=False) == "32"  # a task that keeps fp32 on the CPU (detection)
    assert auto_precision("mps") == "32"
    monkeypatch.setattr(trainer, "_this_cpu_has_bf16", lambda: False)
    assert auto_precision("cpu") == "32"


class _Train:
    accelerator, precision, channels_last, strategy, devices, num_nodes = "cpu", "auto", None, "auto", 1, 1


class _Cfg:
    train = _Train()


def test_resolve_hardware_resolves_auto_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert resolve_hardware(_Cfg())["precision"] == "bf16"  # type: ignore[arg-type]
    assert resolve_hardware(_Cfg(), cpu_bf16=False)["precision"] == "32"  # type: ignore[arg-type]
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert resolve_hardware(_Cfg())["precision"] == "32"  # type: ignore[arg-type]


def test_the_probe_runs_under_the_runs_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.rand(1, 1, 8, 8)
    with probe_autocast("bf16", "cpu"):
        assert conv(x).dtype == torch.bfloat16
    with probe_autocast("32", "cpu"):
        assert conv(x).dtype == torch.float32
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    with probe_autocast("auto", "cpu"):
        assert conv(x).dtype == torch.bfloat16
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    with probe_autocast("auto", "cpu"):
        assert conv(x).dtype == torch.float32


def test_the_restoration_probe_times_its_steps_in_the_runs_precision() -> None:
    from types import SimpleNamespace

    from pixlearn.models.restoration import DnCNN
    from pixlearn.tasks.restore.budget import _step_fn

    seen: list[torch.dtype] = []
    net = DnCNN(1, depth=3, width=4)
    net.tail.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    batch = SimpleNamespace(images=torch.rand(2, 1, 8, 8), targets=torch.rand(2, 1, 8, 8))
    _step_fn(net, batch, lr=1e-3, loss="l2", channels_last=False, autocast=lambda: probe_autocast("bf16", "cpu"))()
    _step_fn(net, batch, lr=1e-3, loss="l2", channels_last=False, autocast=lambda: probe_autocast("32", "cpu"))()
    assert seen == [torch.bfloat16, torch.float32]
