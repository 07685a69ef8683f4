"""write_detect_report: what a reader of a detection report relies on."""

from __future__ import annotations

from pathlib import Path

from pixlearn.tasks.detect.evaluate import evaluate_detector
from pixlearn.tasks.detect.report import write_detect_report

from .test_evaluate import BlobDetector, samples


def test_a_perfect_detector_gets_no_mistake_tables_and_undefined_scores_show_as_dashes(tmp_path: Path) -> None:
    ev = evaluate_detector(BlobDetector(), [samples()[0]], split="test")  # two large objects, both found
    page = write_detect_report(tmp_path, ev).read_text(encoding="utf-8")
    assert "Worst misses" not in page and "Highest-scoring false positives" not in page
    assert "box AP small (&lt; 32² px)</td><td>-</td>" in page  # no small object: COCO's -1, shown as '-'
    assert "map_small (test) = -" in page and "nothing to average there" in page
    assert not (tmp_path / "plots" / "worst_misses_test.png").exists()
    assert (tmp_path / "plots" / "examples_test.png").is_file()


def test_names_from_the_data_are_escaped_and_extra_plots_follow(tmp_path: Path) -> None:
    name, image, truth = samples()[1]
    ev = evaluate_detector(BlobDetector(), [("<b>x</b>.png", image, truth)], split="val")
    extra = tmp_path / "curves.png"
    extra.write_bytes((tmp_path / "plots").mkdir() or _png())
    page = write_detect_report(tmp_path, ev, title="t", plots=[(extra, "val split: training curves")], notes=["a note"]).read_text()
    assert "&lt;b&gt;x&lt;/b&gt;.png" in page and "<b>x</b>" not in page
    assert "val split: training curves" in page and "a note" in page
    assert page.index("Worst misses") < page.index("<h2>Plots</h2>")


def _png() -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    assert ok
    return buf.tobytes()
