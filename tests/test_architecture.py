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


# ---------------------------------------------------------------- one package per task on one engine

TASK_FILES = ("__init__.py", "config.py", "data.py", "module.py", "train.py", "evaluate.py", "predict.py", "metrics.py", "report.py")


def test_layout_contracts_are_declared_and_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    out = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=ROOT).stdout
    for name in ("Tasks never import each other", "cli and serve reach the task packages only through the task registry",
                 "The engine imports no task"):
        assert any(line.startswith(name) and line.endswith("KEPT") for line in out.splitlines()), (name, out)


def test_every_registered_task_is_a_package_with_the_standard_files():
    from pixlearn.tasks.registry import ENTRY_POINTS, tasks

    specs = tasks()
    assert {"classify", "segment", "restore"} <= set(specs)
    for name, spec in specs.items():
        assert spec.package == f"pixlearn.tasks.{name}"
        folder = ROOT / "src" / "pixlearn" / "tasks" / name
        missing = [f for f in TASK_FILES if not (folder / f).is_file()]
        assert not missing, (name, missing)
        assert set(ENTRY_POINTS) <= set(spec.entry), name
        assert spec.serves, name


def test_every_task_entry_point_resolves():
    from pixlearn.tasks.registry import task, task_names

    for name in task_names():
        spec = task(name)
        for what, target in spec.entry.items():
            assert target.startswith(f"{spec.package}."), (name, what, target)  # a task's entry points are its own
            assert spec.load(what) is not None, (name, what)
        assert callable(spec.load("train")) and callable(spec.load("load")) and callable(spec.load("evaluate"))
        assert hasattr(spec.load("config"), "from_overrides")


def test_importing_the_task_registry_loads_no_torch():
    out = _run(
        "import sys, pixlearn.tasks; from pixlearn.tasks.registry import tasks; names = sorted(tasks()); "
        "print(','.join(names), 'torch' in sys.modules, 'lightning' in sys.modules)"
    )
    names, torch_loaded, lightning_loaded = out.split()
    assert {"classify", "segment", "restore"} <= set(names.split(","))
    assert (torch_loaded, lightning_loaded) == ("False", "False")


def test_a_run_folder_is_dispatched_by_its_model_card(tmp_path):
    import json

    from pixlearn.tasks.registry import task_for_run

    for name in ("classify", "segment", "restore"):
        run = tmp_path / name
        (run / "weights").mkdir(parents=True)
        (run / "weights" / "model.json").write_text(json.dumps({"task": name}))
        assert task_for_run(run).name == name
    assert task_for_run(tmp_path / "empty") is None


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("pixlearn.train.segment", "pixlearn.tasks.segment.train"),
        ("pixlearn.train.engine", "pixlearn.engine.module"),
        ("pixlearn.eval.classification", "pixlearn.tasks.classify.metrics"),
        ("pixlearn.tasks.classify_predict", "pixlearn.tasks.classify.predict"),
    ],
)
def test_an_old_module_path_names_its_new_place(old, new):
    out = _run(f"try:\n    import {old}\nexcept ModuleNotFoundError as e:\n    print(e)\nelse:\n    print('imported')")
    assert new in out and "moved to" in out, out


def test_the_train_facade_still_resolves_the_documented_names():
    out = _run(
        "import pixlearn.train as t; print(t.train_classifier.__module__, t.train_segmenter.__module__, "
        "t.train_restorer.__module__, t.SegmentConfig.__module__, t.EngineModule.__module__)"
    )
    assert out.split() == ["pixlearn.tasks.classify.train", "pixlearn.tasks.segment.train", "pixlearn.tasks.restore.train",
                           "pixlearn.tasks.segment.config", "pixlearn.engine.module"]
