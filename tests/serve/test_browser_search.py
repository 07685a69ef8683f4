"""The web page's Search view in headless Chromium against a real ``pixlearn serve`` with an API key: create a
collection, upload images, query with one of them and see the nearest images as thumbnails with scores.

Skipped without Debian's ``chromium`` and ``chromium-driver`` (see test_browser.py, whose helpers it uses).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.serve.test_browser import _fail_context, _Live, _open, _png, _wait, browser, pytestmark  # noqa: F401

KEY = "search-key"


def _pictures(folder: Path) -> dict[str, Path]:
    import cv2
    from skimage import data

    out = {}
    for name in ("astronaut", "camera", "coins", "chelsea"):
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out[name] = folder / f"{name}.png"
        out[name].write_bytes(_png(cv2.resize(img, (120, 90), interpolation=cv2.INTER_AREA)))
    return out


@pytest.fixture
def keyed(start_server) -> _Live:
    return _Live(start_server("--api-key", KEY), start_server)


def test_search_view_creates_a_collection_adds_images_and_shows_the_nearest_as_thumbnails(
        keyed: _Live, browser, tmp_path: Path) -> None:
    pics = _pictures(tmp_path)
    _open(browser, keyed.url + "/")
    browser.execute_script(f"localStorage.setItem('pixlearn.apiKey', '{KEY}')")
    _open(browser, keyed.url + "/#search")
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-search").is_displayed())
    try:
        _wait(browser).until(lambda d: d.execute_script("return document.body.dataset.collections === '0'"))
    except TimeoutException:
        pytest.fail("the collections did not load\n" + _fail_context(browser, keyed))

    browser.find_element(By.ID, "coll-name").send_keys("pets and people")
    model = browser.find_element(By.ID, "coll-model")
    assert model.get_attribute("value") == "phash"
    browser.find_element(By.ID, "coll-create").click()
    _wait(browser).until(lambda d: d.execute_script("return document.body.dataset.collections === '1'"))
    assert "pets and people · phash · 0 images" in browser.find_element(By.ID, "coll-select").text

    browser.find_element(By.ID, "coll-files").send_keys("\n".join(str(p) for p in pics.values()))
    _wait(browser).until(EC.element_to_be_clickable((By.ID, "coll-add"))).click()
    status = browser.find_element(By.ID, "coll-add-status")
    try:
        _wait(browser, 60).until(lambda d: status.get_attribute("data-added") == "4")
    except TimeoutException:
        pytest.fail("the images were not added\n" + _fail_context(browser, keyed))
    assert "4 added" in status.text and "4 images in the collection" in status.text
    assert "4 images" in browser.find_element(By.ID, "coll-select").text

    browser.find_element(By.ID, "search-file").send_keys(str(pics["coins"]))
    browser.find_element(By.ID, "search-topk").clear()
    browser.find_element(By.ID, "search-topk").send_keys("3")
    _wait(browser).until(EC.element_to_be_clickable((By.ID, "search-btn"))).click()
    try:
        _wait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-results .search-hit")) == 3)
    except TimeoutException:
        pytest.fail("no search results appeared\n" + _fail_context(browser, keyed))
    hits = browser.find_elements(By.CSS_SELECTOR, "#search-results .search-hit")
    assert [h.get_attribute("data-rank") for h in hits] == ["1", "2", "3"]
    assert hits[0].find_element(By.CSS_SELECTOR, ".search-name").text == "coins.png"
    assert float(hits[0].get_attribute("data-score")) >= 0.95
    assert hits[0].find_element(By.CSS_SELECTOR, ".score-value").text.endswith("bits")
    # The thumbnails came through the API with the key (blob URLs) and decoded.
    thumb = hits[0].find_element(By.CSS_SELECTOR, "img.search-thumb")
    _wait(browser).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb))
    assert thumb.get_attribute("src").startswith("blob:")
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", thumb) == [120, 90]
    assert not browser.find_element(By.ID, "error").is_displayed(), _fail_context(browser, keyed)

    # Delete it through the confirmation dialog: the list is empty again.
    browser.find_element(By.ID, "coll-delete").click()
    _wait(browser).until(EC.visibility_of_element_located((By.ID, "confirm-dialog")))
    browser.find_element(By.ID, "confirm-ok").click()
    _wait(browser).until(lambda d: d.execute_script("return document.body.dataset.collections === '0'"))
    assert not browser.find_element(By.ID, "search-results-card").is_displayed()
    browser.execute_script("localStorage.removeItem('pixlearn.apiKey')")
