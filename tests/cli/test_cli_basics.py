"""The CLI's grammar: exit codes 0/1/2, one-line errors, did-you-mean, machine-readable stdout."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import pixlearn
from pixlearn.cli import main
from pixlearn.io import write_image


def run(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"pixlearn {pixlearn.__version__}"


def test_info_json(capsys):
    code, out, _ = run(["info", "--format", "json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["pixlearn"] == pixlearn.__version__
    assert {"numpy", "pillow", "torch"} <= set(report["packages"])
    assert "threads" in report["torch"] or report["torch"]["available"] is False
    assert set(report["caches"]) == {"pixlearn", "torch_hub", "huggingface"}
    assert isinstance(report["offline"]["requested"], bool)


def test_show_ok_and_refused(tmp_path, capsys):
    write_image(tmp_path / "good.png", np.zeros((5, 7, 3), np.uint8))
    (tmp_path / "bad.jpg").write_bytes(b"this is text")
    code, out, err = run(["show", str(tmp_path / "good.png"), "--format", "json"], capsys)
    assert code == 0
    [row] = json.loads(out)
    assert (row["status"], row["format"], row["width"], row["height"], row["orientation"]) == ("ok", "PNG", 7, 5, 1)
    code, out, err = run(["show", str(tmp_path), "--format", "csv"], capsys)
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0].startswith("path,status,format")
    assert any("bad.jpg,refused" in line and "ImageDecodeError" in line for line in lines)
    assert "1 of 2 image(s) refused" in err


def test_unknown_command_suggests(capsys):
    code, _, err = run(["shwo", "x.png"], capsys)
    assert code == 2
    assert "did you mean 'show'" in err and err.count("\n") == 1


def test_unknown_option_suggests(capsys):
    code, _, err = run(["show", "--formt", "json", "x.png"], capsys)
    assert code == 2 and "--format" in err and err.startswith("error: ")


def test_bad_choice_is_usage_error(capsys):
    code, _, err = run(["info", "--format", "yaml"], capsys)
    assert code == 2 and "yaml" in err


def test_errors_are_one_line_and_debug_adds_traceback(tmp_path, capsys, monkeypatch):
    def boom(*a, **k):
        raise pixlearn.ConfigError("something precise went wrong; do this instead")

    monkeypatch.setattr("pixlearn.cli.info.environment_report", boom)
    code, out, err = run(["info"], capsys)
    assert code == 1 and err == "error: something precise went wrong; do this instead\n"
    code, out, err = run(["info", "--debug"], capsys)
    assert code == 1 and "Traceback" in err


def test_console_script_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "pixlearn.cli", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("pixlearn ")
    proc = subprocess.run([sys.executable, "-m", "pixlearn.cli", "show", "/nonexistent.png"], capture_output=True, text=True)
    assert proc.returncode == 1 and "no such file" in proc.stdout + proc.stderr
