"""The package's shape: layer contracts hold, and `import pixlearn` is light and fast."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    proc = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout


def test_import_pixlearn_loads_nothing_heavy():
    out = _run(
        "import sys, pixlearn; heavy = [m for m in ('torch', 'cv2', 'PIL', 'numpy', 'skimage', 'sklearn', 'typer') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    assert out.strip() == ""


def test_import_pixlearn_is_fast():
    # best of three fresh interpreters, the import alone
    times = [
        float(_run("import time; t = time.perf_counter(); import pixlearn; print(time.perf_counter() - t)"))
        for _ in range(3)
    ]
    assert min(times) < 0.25, times


def test_lazy_public_names_resolve():
    out = _run("import pixlearn; print(pixlearn.read_image.__module__, pixlearn.PixlearnError.__name__)")
    assert out.split() == ["pixlearn.io.image", "PixlearnError"]


@pytest.mark.parametrize("layer", ["_core", "io", "ops"])
def test_lower_layers_never_import_torch(layer):
    out = _run(f"import sys, pixlearn.{layer}; print('torch' in sys.modules)")
    assert out.strip() == "False"
