"""The web page's Faces view and the faces and text of the Analyze view, in headless Chromium against a real
``pixlearn serve``: enrol a person from a photo, then analyze a picture holding their face and a sign and see the
face boxed with the name and the text boxed with its string; delete the person.

Skipped without Debian's ``chromium`` and ``chromium-driver`` (see test_browser.py, whose helpers it uses), dlib or
the DejaVu fonts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.serve.test_browser import _fail_context, _Live, _open, _png, _wait, browser, pytestmark  # noqa: F401

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
pytest.importorskip("dlib", reason="the faces routes need dlib (pip install dlib-bin)")
pytest.importorskip("rapidocr_onnxruntime", reason="reading text needs rapidocr-onnxruntime")


def _head() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:280, 90:350])


def _scene() -> np.ndarray:
    """The astronaut's head on the left, a white sign reading EXIT 7 on the right (280 x 560)."""
    from PIL import Image, ImageDraw, ImageFont

    sign = Image.new("RGB", (300, 280), "white")
    ImageDraw.Draw(sign).text((40, 110), "EXIT 7", fill="black", font=ImageFont.truetype(str(FONT), 44))
    return np.concatenate([_head(), np.asarray(sign)], axis=1)


@pytest.mark.skipif(not FONT.is_file(), reason=f"needs {FONT} (apt-get install fonts-dejavu-core)")
def test_enrol_then_analyze_boxes_the_named_face_and_the_text(live_server: str, start_server, browser,
                                                              tmp_path: Path) -> None:
    server = _Live(live_server, start_server)
    head, scene = tmp_path / "eileen.png", tmp_path / "scene.png"
    head.write_bytes(_png(_head()))
    scene.write_bytes(_png(_scene()))

    _open(browser, server.url + "/#faces")
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-faces").is_displayed())
    browser.find_element(By.ID, "enroll-name").send_keys("Eileen")
    browser.find_element(By.ID, "enroll-files").send_keys(str(head))
    browser.find_element(By.ID, "enroll-btn").click()
    try:
        _wait(browser, 60).until(EC.visibility_of_element_located((By.CSS_SELECTOR, '#gallery-table tr[data-person="Eileen"]')))
    except TimeoutException:
        pytest.fail("the person was not enrolled\n" + _fail_context(browser, server))
    assert browser.find_element(By.ID, "enroll-status").get_attribute("data-added") == "1"

    _open(browser, server.url + "/#analyze")
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-analyze").is_displayed())
    _wait(browser, 30).until(EC.presence_of_element_located((By.ID, "op-canny")))
    for box in ("feat-labels", "feat-objects", "op-canny"):  # only what this test looks at
        if browser.find_element(By.ID, box).is_selected():
            browser.find_element(By.ID, box).click()
    for box in ("feat-faces", "feat-text"):
        browser.find_element(By.ID, box).click()
    browser.find_element(By.ID, "file-input").send_keys(str(scene))
    _wait(browser).until(EC.element_to_be_clickable((By.ID, "analyze-btn"))).click()
    canvas = browser.find_element(By.ID, "marks-canvas")
    try:
        _wait(browser, 90).until(lambda d: canvas.get_attribute("data-drawn") == "1")
    except TimeoutException:
        pytest.fail("no faces / text were drawn\n" + _fail_context(browser, server))
    assert canvas.get_attribute("data-faces") == "1"
    assert [r.get_attribute("data-name") for r in browser.find_elements(By.CSS_SELECTOR, "#faces-list .face-row")] == ["Eileen"]
    texts = [r.get_attribute("data-text") for r in browser.find_elements(By.CSS_SELECTOR, "#text-list .text-row")]
    assert " ".join(texts) == "EXIT 7", texts
    assert browser.execute_script("return [arguments[0].width, arguments[0].height]", canvas) == [560, 280]
    # the face's box is drawn in green at its place on the canvas (left half), the sign's in blue (right half)
    box = _first_face_box(browser)
    assert box[2] <= 260
    face_px = browser.execute_script(
        "const f = arguments[1]; const c = arguments[0].getContext('2d');"
        "return Array.from(c.getImageData(f[0], Math.round((f[1] + f[3]) / 2), 1, 1).data).slice(0, 3);",
        canvas, box)
    assert face_px[1] > 120 and face_px[0] < 100, face_px
    assert not browser.find_element(By.ID, "error").is_displayed(), _fail_context(browser, server)

    # Delete her: the gallery is empty again.
    _open(browser, server.url + "/#faces")
    row = _wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, '#gallery-table tr[data-person="Eileen"]')))
    row.find_element(By.CSS_SELECTOR, ".person-delete-btn").click()
    _wait(browser).until(EC.visibility_of_element_located((By.ID, "confirm-dialog")))
    browser.find_element(By.ID, "confirm-ok").click()
    _wait(browser).until(lambda d: d.execute_script("return document.body.dataset.people === '0'"))
    assert browser.find_element(By.ID, "gallery-empty").is_displayed()


def _first_face_box(browser) -> list[int]:
    text = browser.find_element(By.CSS_SELECTOR, "#faces-list .face-row .muted").text
    return [int(v) for v in text.split(", ")]
