"""The web page's Faces view calibrates the gallery: with nobody enrolled the button's answer says what is missing;
with two people enrolled (one of them twice) it shows the calibration under the gallery. Headless Chromium against a
real ``pixlearn serve``; skipped without Debian's ``chromium`` and ``chromium-driver`` (see test_browser.py) or dlib.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

from tests.serve.test_browser import _fail_context, _Live, _open, _png, _wait, browser, pytestmark  # noqa: F401

pytest.importorskip("dlib", reason="the faces routes need dlib (pip install dlib-bin)")


def _head() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[0:280, 90:350])


def _b64(image: np.ndarray) -> str:
    return base64.b64encode(_png(image)).decode("ascii")


def test_calibrate_button_shows_the_error_then_the_calibration(live_server: str, start_server, browser) -> None:
    import httpx

    server = _Live(live_server, start_server)
    _open(browser, server.url + "/#faces")
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-faces").is_displayed())
    line = browser.find_element(By.ID, "gallery-calibration")
    _wait(browser).until(lambda d: "Not calibrated" in line.text)
    status = browser.find_element(By.ID, "calibrate-status")
    browser.find_element(By.ID, "calibrate-btn").click()
    _wait(browser, 30).until(lambda d: "0 face(s)" in status.text)
    assert "at least 2 people" in status.text

    head = _head()
    for name, images in (("Eileen", [head, head[:, ::-1].copy()]), ("Other", [(head * 0.6).astype(np.uint8)])):
        body = {"name": name, "images": [{"b64": _b64(i)} for i in images]}
        r = httpx.post(server.url + "/v1/faces/enroll", json=body, timeout=60)
        assert r.status_code == 200 and r.json()["added"] == len(images), r.text
    browser.find_element(By.ID, "calibrate-btn").click()
    try:
        _wait(browser, 60).until(lambda d: status.get_attribute("data-threshold"))
    except TimeoutException:
        pytest.fail("no calibration came back\n" + _fail_context(browser, server))
    threshold = float(status.get_attribute("data-threshold"))
    assert "0.6 →" in status.text
    _wait(browser).until(lambda d: line.text.startswith("Calibration: threshold"))
    assert "3 pairs (1 same, 2 different)" in line.text and "gallery (3 faces of 2 people)" in line.text
    assert f"{threshold:.3f}"[:4] in browser.find_element(By.ID, "gallery-threshold").text
    assert not browser.find_element(By.ID, "error").is_displayed(), _fail_context(browser, server)
