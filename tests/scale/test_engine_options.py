"""``--engine ray`` options checked before any Ray work: workers range, addresses, kinds not served, Ray missing.

No test here starts Ray (test_ray_engine.py does, once).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pixlearn._core.errors import ConfigError
from pixlearn.io import write_image

runner = CliRunner()


def _cli(*args):
    from pixlearn.cli.app import app

    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture()
def images(tmp_path) -> Path:
    write_image(tmp_path / "imgs" / "a.png", np.zeros((8, 8, 3), np.uint8))
    return tmp_path / "imgs"


@pytest.fixture()
def no_ray_start(monkeypatch):
    """Fails the test if anything tries to start or join a Ray cluster."""
    ray = pytest.importorskip("ray")

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", refuse)
    return ray


@pytest.mark.parametrize("workers", ["0", "65"])
def test_workers_out_of_range_is_a_usage_error_before_ray_starts(workers, images, tmp_path, no_ray_start):
    run = tmp_path / "no-run"  # never read: the range is checked first
    res = _cli("predict", run, images, "--engine", "ray", "--workers", workers)
    assert res.exit_code == 2 and "--workers" in res.output and "1..64" in res.output
    res = _cli("process", "edges", images, "-o", tmp_path / "out", "--engine", "ray", "--workers", workers)
    assert res.exit_code == 2 and "--workers" in res.output


def test_a_malformed_address_is_a_usage_error_naming_it_and_the_forms(images, tmp_path, no_ray_start):
    res = _cli("process", "edges", images, "-o", tmp_path / "out", "--engine", "ray", "--address", "not an address")
    assert res.exit_code == 2 and "not an address" in res.output and "ray://HOST:PORT" in res.output
    res = _cli("process", "edges", images, "-o", tmp_path / "out", "--address", "auto")  # no --engine ray
    assert res.exit_code == 2 and "--engine ray" in res.output


def test_an_address_ray_cannot_join_is_a_typed_error_naming_it(images, tmp_path, monkeypatch, capsys):
    ray = pytest.importorskip("ray")
    from pixlearn.scale import RayConnectionError, ray_cluster, ray_process

    def fail(*args, **kwargs):  # what ray.init raises for a head node that does not answer
        raise ConnectionError("Could not find any running Ray instance. Please specify the one to connect to")

    monkeypatch.setattr(ray, "init", fail)
    with pytest.raises(RayConnectionError, match=r"'10\.0\.0\.9:6379'.*ray start --head"):
        with ray_cluster("10.0.0.9:6379"):
            pass
    with pytest.raises(RayConnectionError, match="10.0.0.9:6379"):
        ray_process("edges", images, tmp_path / "out", address="10.0.0.9:6379", progress=False)
    from pixlearn.cli import main

    rc = main(["process", "edges", str(images), "-o", str(tmp_path / "out"), "--engine", "ray", "--address", "ray://10.0.0.9:10001"])
    err = capsys.readouterr().err
    assert rc == 1 and "ray://10.0.0.9:10001" in err and "Traceback" not in err


def test_ray_not_installed_names_the_extra(monkeypatch, images, tmp_path):
    from pixlearn.scale import RayNotInstalledError, ray_process

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(RayNotInstalledError, match=r"pip install 'pixlearn\[ray\]'"):
        ray_process("edges", images, tmp_path / "out", progress=False)


def test_a_kind_ray_does_not_serve_yet_is_a_typed_error_listing_those_it_does(tmp_path, images, no_ray_start):
    from pixlearn.scale import ray_predict

    run = tmp_path / "classic"  # what pixlearn train classic writes first: its config names the method
    run.mkdir()
    (run / "config.yaml").write_text("method: classic\n")
    with pytest.raises(ConfigError, match="classic run.*classify runs.*restore exported models.*--engine local"):
        ray_predict(run, images)
    with pytest.raises(ConfigError, match="workers must be an integer in 1..64"):
        ray_predict(run, images, workers=0)


def test_the_local_engine_and_import_pixlearn_never_import_ray(images):
    code = ("import sys, pixlearn, pixlearn.scale; from pixlearn.cli import predict, ops_cmd; "
            "from pixlearn.ops.batch import process; process('edges', sys.argv[1], sys.argv[2], progress=False); "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(images), str(images.parent / "out")], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_detect_runs_bad_options_give_the_local_errors_before_ray_starts(tmp_path, no_ray_start, capsys):
    from pixlearn.cli import main
    from tests.export.test_export_detect import _detect_run

    run = _detect_run(tmp_path / "run", "faster_rcnn")
    for k in range(2):
        write_image(tmp_path / "imgs" / f"im{k}.png", np.zeros((20, 24, 3), np.uint8))
    for bad in (["--max-detections", "0"], ["--iou", "0"], ["--tile", "32"], ["-o", str(tmp_path / "one.png")]):
        args = ["predict", str(run), str(tmp_path / "imgs"), "--no-progress", *bad]
        local_rc, local = main(args), capsys.readouterr().err
        ray_rc, on_ray = main([*args, "--engine", "ray"]), capsys.readouterr().err
        assert ray_rc == local_rc == 1 and on_ray == local and "error" in local.lower(), (bad, local, on_ray)
    assert "names one image file but there are 2 images" in local
