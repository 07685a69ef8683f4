"""The web page in headless Chromium against a real ``pixlearn`` server process on loopback.

Needs Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``; other
paths through ``PIXLEARN_CHROMIUM`` / ``PIXLEARN_CHROMEDRIVER``). Every wait is an explicit WebDriverWait on
the page's state; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("PIXLEARN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PIXLEARN_CHROMEDRIVER", "/usr/bin/chromedriver")

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"headless browser tests need {CHROMIUM} and {CHROMEDRIVER}: "
    "install Debian's packages with `apt-get install chromium chromium-driver`",
)


RED, BLUE = (230, 20, 20), (20, 20, 230)


# --------------------------------------------------------------------------- helpers
def _png(image: np.ndarray) -> bytes:
    from pixlearn.io.image import encode_image

    return encode_image(image, "png")


def _two_colour_image() -> np.ndarray:
    """48x32: left half pure red, right half pure blue."""
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, :24] = (255, 0, 0)
    img[:, 24:] = (0, 0, 255)
    return img


def _tinted(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 16) -> np.ndarray:
    noise = rng.integers(-25, 26, size=(size, size, 3))
    return np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)


def _dataset_zip(path: Path, *, per_class: int = 8) -> Path:
    """A zip with a folder per class: ``red/`` and ``blue/``, ``per_class`` 16x16 PNGs each."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for name, colour in (("red", RED), ("blue", BLUE)):
            for i in range(per_class):
                zf.writestr(f"{name}/{name}_{i}.png", _png(_tinted(colour, rng)))
    return path


class _Live:
    """A running ``pixlearn serve`` (from the ``live_server`` / ``start_server`` fixtures): its URL and log."""

    def __init__(self, url: str, start_server) -> None:
        self.url = url
        procs = [p for p in getattr(start_server, "servers", []) if getattr(p, "url", None) == url]
        self._proc = procs[-1] if procs else None

    def log_tail(self) -> str:
        return self._proc.log() if self._proc is not None else "(server log not available)"


@pytest.fixture
def server(live_server: str, start_server) -> _Live:
    """The backend's ``live_server``: a real ``pixlearn serve`` process on loopback, no models, no keys."""
    return _Live(live_server, start_server)


def _chromium(profile: Path, *extra: str) -> webdriver.Chrome:
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--disable-extensions", "--no-first-run",
                f"--user-data-dir={profile}", *extra):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    driver = _chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def offline_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Chromium that can reach 127.0.0.1 only: every other host name fails to resolve (no CDN, no fonts service)."""
    driver = _chromium(tmp_path_factory.mktemp("chromium-offline"),
                       "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, timeout: float = 30.0) -> WebDriverWait:
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def _open(driver, url: str) -> None:
    driver.get(url)
    _wait(driver).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


def _wait_ops(driver, server: _Live) -> None:
    try:
        _wait(driver, 30).until(EC.presence_of_element_located((By.ID, "op-canny")))
    except TimeoutException:
        pytest.fail("the operations list did not load\n" + _fail_context(driver, server))


def _console_errors(driver) -> list[str]:
    try:
        return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    except Exception:  # noqa: BLE001 - not every driver keeps logs
        return []


def _fail_context(driver, server: _Live) -> str:
    banner = driver.execute_script("return document.querySelector('#error-text').textContent")
    return f"page error banner: {banner!r}\nconsole: {_console_errors(driver)}\nserver log:\n{server.log_tail()}"


# --------------------------------------------------------------------------- tests
def test_page_is_served_offline_with_its_assets(server: _Live, browser) -> None:
    _console_errors(browser)  # reading the log empties it: what earlier tests in this browser logged is not ours
    _open(browser, server.url + "/")
    assert browser.title == "pixlearn"
    # Every resource the page loaded came from this server: nothing from a CDN or font service.
    urls = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls, "the page loaded no assets"
    assert all(u.startswith(server.url) or u.startswith(("data:", "blob:")) for u in urls), urls
    # Three tabs, the Analyze view active, operations listed from GET /v1/ops.
    assert browser.find_element(By.ID, "tab-analyze").get_attribute("aria-selected") == "true"
    _wait_ops(browser, server)
    assert len(browser.find_elements(By.CSS_SELECTOR, ".op-check")) >= 10
    # Keyboard: ArrowRight on the active tab moves to the next view.
    browser.find_element(By.ID, "tab-analyze").send_keys("\ue014")  # Keys.ARROW_RIGHT
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-models").is_displayed())
    assert browser.switch_to.active_element.get_attribute("id") == "tab-models"
    assert _console_errors(browser) == []


def test_analyze_shows_colours_quality_and_an_op_beside_the_original(server: _Live, browser, tmp_path: Path) -> None:
    image_path = tmp_path / "halves.png"
    image_path.write_bytes(_png(_two_colour_image()))
    _open(browser, server.url + "/#analyze")
    _wait_ops(browser, server)
    browser.find_element(By.ID, "file-input").send_keys(str(image_path))
    _wait(browser).until(EC.element_to_be_clickable((By.ID, "analyze-btn")))
    assert browser.find_element(By.ID, "op-canny").is_selected()
    browser.find_element(By.ID, "analyze-btn").click()

    try:
        _wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#colors .swatch"))
        _wait(browser, 60).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '.op-result[data-op="canny"]:not([data-state="running"])'))
    except TimeoutException:
        pytest.fail("no colours / op result appeared\n" + _fail_context(browser, server))

    # Colours: the two halves, each about half of the picture, with hex, name and a percentage.
    swatches = browser.find_elements(By.CSS_SELECTOR, "#colors .swatch")
    found = {}
    for sw in swatches:
        hex_ = sw.find_element(By.CSS_SELECTOR, ".swatch-hex").text.lower()
        assert re.fullmatch(r"#[0-9a-f]{6}", hex_)
        assert sw.find_element(By.CSS_SELECTOR, ".swatch-name").text.strip()
        found[hex_] = float(sw.find_element(By.CSS_SELECTOR, ".swatch-pct").text.rstrip("%"))
    assert found.get("#ff0000") == pytest.approx(50, abs=1), found
    assert found.get("#0000ff") == pytest.approx(50, abs=1), found
    chip = swatches[0].find_element(By.CSS_SELECTOR, ".swatch-chip").value_of_css_property("background-color")
    assert chip in {"rgba(255, 0, 0, 1)", "rgba(0, 0, 255, 1)", "rgb(255, 0, 0)", "rgb(0, 0, 255)"}

    # Quality: numbers in the table; brightness of pure red/blue halves is well inside (0, 1).
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#quality tr[data-key="brightness"]'))
    brightness = float(browser.find_element(By.CSS_SELECTOR, '#quality tr[data-key="brightness"] .quality-value').text)
    assert 0.0 < brightness < 1.0
    width = browser.find_element(By.CSS_SELECTOR, '#quality tr[data-key="width"] .quality-value').text
    assert width == "48"

    # The canny result is a real decoded PNG the size of the original, shown beside it.
    card = browser.find_element(By.CSS_SELECTOR, '.op-result[data-op="canny"]')
    assert card.get_attribute("data-state") == "done", card.text + "\n" + _fail_context(browser, server)
    result = card.find_element(By.CSS_SELECTOR, "img.op-image")
    _wait(browser).until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", result))
    size = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result)
    assert size == [48, 32]
    assert len(card.find_elements(By.CSS_SELECTOR, "img")) == 2  # original + result
    assert browser.find_element(By.ID, "error").is_displayed() is False

    # Labels (on by default): the ImageNet labeller's classes, or the server's note on how to add its weights.
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#labels .label-model, #labels .labels-unavailable"))
    note = browser.find_elements(By.CSS_SELECTOR, "#labels .labels-unavailable")
    assert (note and "pixlearn weights add" in note[0].text) or browser.find_elements(
        By.CSS_SELECTOR, '#labels .label-model[data-model="imagenet"] .score-row')


def test_an_api_error_is_shown_not_swallowed(server: _Live, browser, tmp_path: Path) -> None:
    bogus = tmp_path / "not-an-image.png"
    bogus.write_bytes(b"this is plain text, not a PNG")
    _open(browser, server.url + "/#analyze")
    _wait_ops(browser, server)
    browser.find_element(By.ID, "op-canny").click()  # features only: the banner carries the analyze error
    browser.find_element(By.ID, "file-input").send_keys(str(bogus))
    _wait(browser).until(EC.element_to_be_clickable((By.ID, "analyze-btn"))).click()
    banner = _wait(browser).until(EC.visibility_of_element_located((By.ID, "error")))
    text = banner.text
    assert text.startswith("Analyze:"), text
    assert "not-an-image.png" in text or "image" in text.lower(), text
    assert "500" not in text
    assert browser.find_elements(By.CSS_SELECTOR, "#colors .swatch") == []


def _no_weights_env(tmp_path: Path) -> dict[str, str]:
    """An empty local weights folder and cache: 'auto' trains the small CNN whatever the machine holds."""
    (tmp_path / "no-weights").mkdir(exist_ok=True)
    return {"PIXLEARN_WEIGHTS": str(tmp_path / "no-weights"), "PIXLEARN_CACHE": str(tmp_path / "cache")}


@pytest.fixture
def no_weights_server(start_server, tmp_path: Path) -> _Live:
    """A real ``pixlearn serve`` whose local weights folders are empty (no models, no keys)."""
    return _Live(start_server(env=_no_weights_env(tmp_path)), start_server)


@pytest.mark.slow  # a real training process (torch + Lightning start-up, 2 epochs): ~30-50 s on a busy 2-core box
def test_train_from_a_zip_watch_it_finish_then_classify_and_delete(no_weights_server: _Live, browser, tmp_path: Path) -> None:
    server = no_weights_server
    archive = _dataset_zip(tmp_path / "colours.zip")
    probe = tmp_path / "probe.png"
    probe.write_bytes(_png(_tinted(RED, np.random.default_rng(1))))

    _open(browser, server.url + "/")
    browser.find_element(By.ID, "tab-train").click()
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-train").is_displayed())
    browser.find_element(By.ID, "train-file").send_keys(str(archive))
    browser.find_element(By.CSS_SELECTOR, "#train-advanced summary").click()  # epochs, size, batch: advanced
    for field, value in (("train-name", "web-colours"), ("train-epochs", "2"), ("train-img-size", "16"),
                         ("train-batch", "8")):
        box = _wait(browser).until(EC.visibility_of_element_located((By.ID, field)))
        box.clear()
        box.send_keys(value)
    browser.find_element(By.ID, "train-btn").click()

    status = browser.find_element(By.ID, "train-status")
    try:
        _wait(browser, 20).until(lambda d: status.text in {"queued", "running", "succeeded"})
        _wait(browser, 300).until(lambda d: status.text in {"succeeded", "failed", "cancelled"})
    except TimeoutException:
        pytest.fail(f"training did not finish; status {status.text!r}, job error "
                    f"{browser.find_element(By.ID, 'train-error').text!r}\n" + _fail_context(browser, server))
    assert status.text == "succeeded", browser.find_element(By.ID, "train-error").text

    # The finished job: full progress bar, one point per epoch for each curve, a metrics row per epoch.
    assert float(browser.find_element(By.ID, "train-progress").get_attribute("value")) == pytest.approx(1.0)
    chart = browser.find_element(By.ID, "train-chart")
    assert chart.get_attribute("data-points") == "2"
    assert len(chart.find_elements(By.CSS_SELECTOR, ".line-train-loss circle")) == 2
    assert len(chart.find_elements(By.CSS_SELECTOR, ".line-val-acc circle")) == 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#train-metrics tbody tr")) == 2
    assert not browser.find_element(By.ID, "train-cancel").is_displayed()

    # Which model it trained and why (no local weights: the small CNN), and the held-out score with its split.
    backbone = browser.find_element(By.ID, "train-backbone")
    assert backbone.is_displayed() and backbone.get_attribute("data-pretrained") == "false"
    assert browser.find_element(By.ID, "train-backbone-model").text == "pixlearn_smallcnn"
    assert "no local weights: small CNN pixlearn_smallcnn" in backbone.text and "<PIXLEARN_WEIGHTS>" in backbone.text
    final = browser.find_element(By.ID, "train-final")
    assert final.is_displayed() and final.get_attribute("data-split") == "holdout"
    assert re.fullmatch(r"\d+\.\d%", browser.find_element(By.ID, "train-final-acc").text)
    assert re.search(r"on the holdout split \(n = \d+\): images never used for training", final.text), final.text

    # Try it: classify an image with the new model.
    try_section = _wait(browser).until(EC.visibility_of_element_located((By.ID, "try-section")))
    model = browser.find_element(By.ID, "try-model").text
    assert model.startswith("web-colours"), model
    assert try_section.get_attribute("data-model") == model
    browser.find_element(By.ID, "try-file").send_keys(str(probe))
    _wait(browser).until(EC.element_to_be_clickable((By.ID, "try-btn"))).click()
    try:
        _wait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#try-results .score-row, #try-results .inline-error"))
    except TimeoutException:
        pytest.fail("no classification appeared\n" + _fail_context(browser, server))
    assert not browser.find_elements(By.CSS_SELECTOR, "#try-results .inline-error"), browser.find_element(By.ID, "try-results").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#try-results .score-row")
    scores = {r.get_attribute("data-label"): float(r.find_element(By.CSS_SELECTOR, ".score-value").text.rstrip("%")) for r in rows}
    assert set(scores) == {"red", "blue"}
    assert sum(scores.values()) == pytest.approx(100, abs=0.3)  # softmax over both classes, shown in percent

    # The Models view lists it with its classes; delete it through the confirmation dialog.
    browser.find_element(By.ID, "tab-models").click()
    row_sel = f'#models-table tr[data-model="{model}"]'
    row = _wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, row_sel)))
    assert "training" in row.text and "blue" in row.text and "red" in row.text
    row.find_element(By.CSS_SELECTOR, "button.btn.model-details-btn").click()
    details = _wait(browser).until(EC.visibility_of_element_located((By.ID, "model-details")))
    assert browser.find_element(By.ID, "model-details-title").text == model
    assert {c.text for c in details.find_elements(By.CSS_SELECTOR, ".chip")} == {"red", "blue"}
    row.find_element(By.CSS_SELECTOR, ".model-delete-btn").click()
    _wait(browser).until(EC.visibility_of_element_located((By.ID, "confirm-dialog")))
    browser.find_element(By.ID, "confirm-ok").click()
    _wait(browser).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, row_sel)))
    assert browser.find_element(By.ID, "models-empty").is_displayed()
    assert not browser.find_element(By.ID, "error").is_displayed(), _fail_context(browser, server)


@pytest.fixture
def keyed_server(start_server) -> _Live:
    return _Live(start_server("--api-key", "s3cret-key"), start_server)


#: Holds the page's /v1/health request until a request has been refused (401), so that the public endpoint's
#: answer always comes after the refusal: the order that once hid the prompt again, now made certain.
_HEALTH_AFTER_REFUSAL = """(() => {
  const fetch0 = window.fetch.bind(window);
  let refused;
  const seen = new Promise((resolve) => (refused = resolve));
  window.fetch = async (url, opts) => {
    if (String(url).includes("/v1/health")) await seen;
    const resp = await fetch0(url, opts);
    if (resp.status === 401) refused();
    return resp;
  };
})();"""


def test_api_key_prompt_then_stored_key_is_sent(keyed_server: _Live, browser) -> None:
    _open(browser, keyed_server.url + "/")
    browser.execute_script("localStorage.removeItem('pixlearn.apiKey')")
    hold = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _HEALTH_AFTER_REFUSAL})
    try:
        _open(browser, keyed_server.url + "/")
        prompt = _wait(browser).until(EC.visibility_of_element_located((By.ID, "auth-prompt")))
        # /v1/health (public) answered after the refusals; the prompt stays
        _wait(browser).until(lambda d: d.execute_script("return performance.getEntriesByType('resource').some(e => e.name.endsWith('/v1/health'))"))
        assert prompt.is_displayed() and "API key" in prompt.text
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": hold["identifier"]})
    assert not browser.find_elements(By.ID, "op-canny")  # /v1/ops refused without a key
    key = browser.find_element(By.ID, "api-key")
    key.send_keys("s3cret-key")
    browser.find_element(By.ID, "api-key-save").click()
    _wait(browser).until(EC.presence_of_element_located((By.ID, "op-canny")))
    assert not browser.find_element(By.ID, "auth-prompt").is_displayed()
    assert browser.execute_script("return localStorage.getItem('pixlearn.apiKey')") == "s3cret-key"
    # A reload keeps the key: the page works straight away.
    _open(browser, keyed_server.url + "/")
    _wait(browser).until(EC.presence_of_element_located((By.ID, "op-canny")))
    assert not browser.find_element(By.ID, "auth-prompt").is_displayed()
    browser.execute_script("localStorage.removeItem('pixlearn.apiKey')")



# --------------------------------------------------------------------------- API docs offline, cross-site requests
#: ReDoc's sidebar footer always tries a logo from its vendor's CDN (hidden when it fails): the only request the
#: docs pages make elsewhere, refused by their Content-Security-Policy.
_REDOC_LOGO = "cdn.redoc.ly/redoc/logo-mini.svg"


def _offline_errors(driver, server: _Live) -> list[str]:
    return [m for m in _console_errors(driver) if _REDOC_LOGO not in m]


def test_api_docs_list_the_operations_without_internet(server: _Live, offline_browser) -> None:
    d = offline_browser
    d.get("about:blank")
    d.get_log("browser")  # start with an empty console log
    # Swagger UI: every operation listed, the analyze operation among them.
    d.get(server.url + "/docs")
    try:
        analyze = _wait(d, 60).until(EC.presence_of_element_located((By.ID, "operations-analyze-analyze_v1_analyze_post")))
    except TimeoutException:
        pytest.fail(f"/docs listed no operations offline; console: {_console_errors(d)}\n{server.log_tail()}")
    assert "/v1/analyze" in analyze.text
    assert len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 20
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(server.url) for u in urls), urls
    assert _offline_errors(d, server) == []  # no blocked script, style or CSP violation
    # ReDoc likewise.
    d.get(server.url + "/redoc")
    try:
        section = _wait(d, 60).until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '[data-section-id="tag/analyze/operation/analyze_v1_analyze_post"]')))
    except TimeoutException:
        pytest.fail(f"/redoc listed no operations offline; console: {_console_errors(d)}\n{server.log_tail()}")
    assert "/v1/analyze" in section.text or "analy" in section.text.lower()
    assert len(d.find_elements(By.CSS_SELECTOR, '[data-section-id^="operation/"]')) >= 20
    urls = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith(server.url) for u in urls if _REDOC_LOGO not in u), urls
    assert _offline_errors(d, server) == []


@pytest.fixture
def queue_only_server(start_server) -> _Live:
    """A server whose training jobs only queue (no worker process), so submitting one is cheap."""
    return _Live(start_server("--training-workers", "0"), start_server)


_POST_ZIP = """
const [url, mode, b64, done] = arguments;
const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
const form = new FormData();
form.append("archive", new Blob([bytes], {type: "application/zip"}), "colours.zip");
form.append("epochs", "1");
fetch(url, {method: "POST", body: form, mode: mode})
  .then(r => done(r.type === "opaque" ? "opaque" : r.status), e => done("error: " + e));
"""

_GET = """
const [url, done] = arguments;
fetch(url).then(r => done(r.status), e => done("error: " + e));
"""


@pytest.fixture
def other_site() -> Iterator[str]:
    """A plain web page on another origin (http://localhost:PORT/, no CSP): what a malicious site would serve."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = b"<!doctype html><title>another site</title><p>another site</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_train_form_sends_a_time_budget_and_keeps_the_rest_advanced(queue_only_server: _Live, browser,
                                                                       tmp_path: Path) -> None:
    """The form's main field is the time budget (3 minutes); epochs, size, batch and lr sit in a closed
    "Advanced" disclosure and are sent only when filled in; the job panel shows the budget and that the
    model is chosen when the job starts; a budget out of range shows the server's message."""
    import httpx

    srv = queue_only_server
    _open(browser, srv.url + "/#train")
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-train").is_displayed())
    minutes = browser.find_element(By.ID, "train-minutes")
    assert minutes.is_displayed() and minutes.get_attribute("value") == "3"
    assert browser.find_element(By.CSS_SELECTOR, "label[for=train-minutes]").text == "Time budget (minutes)"
    assert browser.find_element(By.ID, "train-advanced").get_attribute("open") is None
    for hidden in ("train-epochs", "train-img-size", "train-batch", "train-lr", "train-arch"):
        assert not browser.find_element(By.ID, hidden).is_displayed(), hidden

    browser.find_element(By.ID, "train-file").send_keys(str(_dataset_zip(tmp_path / "colours.zip", per_class=3)))
    browser.find_element(By.ID, "train-btn").click()
    status = browser.find_element(By.ID, "train-status")
    _wait(browser).until(lambda d: status.text == "queued")
    job = httpx.get(srv.url + "/v1/trainings").json()["trainings"][0]
    assert job["options"] == {"minutes": 3.0, "architecture": "auto", "epochs": None, "img_size": None, "batch": None,
                              "lr": None}
    assert browser.find_element(By.ID, "train-epoch").text == "· budget 3:00 · 0%"
    backbone = browser.find_element(By.ID, "train-backbone")
    assert backbone.is_displayed() and browser.find_element(By.ID, "train-backbone-model").text == "auto"
    assert "auto: chosen when the job starts" in backbone.text
    assert not browser.find_element(By.ID, "train-final").is_displayed()

    browser.find_element(By.CSS_SELECTOR, "#train-advanced summary").click()
    epochs = _wait(browser).until(EC.visibility_of_element_located((By.ID, "train-epochs")))
    epochs.send_keys("4")
    minutes.clear()
    minutes.send_keys("0.5")
    browser.find_element(By.ID, "train-btn").click()
    _wait(browser).until(lambda d: len(httpx.get(srv.url + "/v1/trainings").json()["trainings"]) == 2)
    newest = httpx.get(srv.url + "/v1/trainings").json()["trainings"][0]
    assert (newest["options"]["minutes"], newest["options"]["epochs"], newest["options"]["img_size"]) == (0.5, 4, None)

    minutes.clear()
    minutes.send_keys("10000")
    browser.find_element(By.ID, "train-btn").click()
    error = _wait(browser).until(EC.visibility_of_element_located((By.ID, "train-error")))
    _wait(browser).until(lambda d: "minutes must be between 0.5 and 120" in error.text)
    assert len(httpx.get(srv.url + "/v1/trainings").json()["trainings"]) == 2
    # the watched (queued) job is still polled: its next answer must not hide the refusal
    panel = browser.find_element(By.ID, "train-job")
    renders = int(panel.get_attribute("data-renders"))
    _wait(browser).until(lambda d: int(panel.get_attribute("data-renders")) > renders)
    assert error.is_displayed() and "minutes must be between 0.5 and 120" in error.text


def test_a_page_of_another_site_cannot_start_a_training(queue_only_server: _Live, other_site: str, browser,
                                                       tmp_path: Path) -> None:
    import base64

    import httpx

    srv = queue_only_server
    target = srv.url + "/v1/trainings"
    archive = _dataset_zip(tmp_path / "colours.zip", per_class=3).read_bytes()
    b64 = base64.b64encode(archive).decode()
    # Another site's page sends a valid training upload (no-cors: like a hidden form, no preflight): refused.
    browser.get(other_site + "/")
    assert browser.execute_async_script(_POST_ZIP, target, "no-cors", b64) == "opaque"
    assert httpx.get(srv.url + "/v1/trainings").json()["trainings"] == []
    r = httpx.post(target, headers={"Origin": other_site}, files={"archive": ("colours.zip", archive)})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site_request"
    # Nor can it read an answer: no CORS headers for an origin not allowed with --cors-origin.
    assert str(browser.execute_async_script(_GET, srv.url + "/v1/health")).startswith("error:")
    # The server's own page sends the same upload: the job is created.
    browser.get(srv.url + "/")
    assert browser.execute_async_script(_POST_ZIP, target, "same-origin", b64) == 202
    assert len(httpx.get(srv.url + "/v1/trainings").json()["trainings"]) == 1


def test_after_a_reload_the_job_panel_shows_the_last_job_and_zip_errors_show_once(queue_only_server: _Live, browser,
                                                                                 tmp_path: Path) -> None:
    """The Job panel is restored from GET /v1/trainings after a reload -- a queued job, and a finished one too
    (the newest, or the one watched before) -- and a refused zip's reasons are printed once, not twice."""
    import httpx

    srv = queue_only_server
    _open(browser, srv.url + "/#train")
    _wait(browser).until(lambda d: d.find_element(By.ID, "view-train").is_displayed())
    browser.find_element(By.ID, "train-file").send_keys(str(_dataset_zip(tmp_path / "colours.zip", per_class=3)))
    browser.find_element(By.ID, "train-btn").click()
    status = browser.find_element(By.ID, "train-status")
    _wait(browser).until(lambda d: status.text == "queued")
    job_id = httpx.get(srv.url + "/v1/trainings").json()["trainings"][0]["id"]
    assert job_id in browser.find_element(By.ID, "train-job-id").text

    def reloaded_panel() -> tuple[str, str]:
        browser.execute_script("document.body.dataset.ready = 'old page'")
        browser.refresh()  # a real reload (a get() of the same URL + #hash would stay on the page)
        _wait(browser).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
        # the Trainings table is filled by the same GET /v1/trainings answer that restores the panel
        _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#trainings-table tr[data-job="{job_id}"]'))
        return browser.find_element(By.ID, "train-job-id").text, browser.find_element(By.ID, "train-status").text

    text, state = reloaded_panel()
    assert job_id in text and state == "queued", (text, state)
    assert httpx.delete(f"{srv.url}/v1/trainings/{job_id}").json()["status"] == "cancelled"
    text, state = reloaded_panel()  # a finished job is no longer "live": the panel still shows it
    assert job_id in text and state == "cancelled", (text, state)

    bad = tmp_path / "one-class.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("red/0.png", _png(_tinted(RED, np.random.default_rng(0))))
    browser.find_element(By.ID, "train-file").send_keys(str(bad))
    browser.find_element(By.ID, "train-btn").click()
    error = _wait(browser).until(EC.visibility_of_element_located((By.ID, "train-error")))
    _wait(browser).until(lambda d: "refused" in error.text)
    reasons = httpx.post(srv.url + "/v1/trainings", files={"archive": ("one-class.zip", bad.read_bytes())}).json()["reasons"]
    assert reasons and all(error.text.count(r) == 1 for r in reasons), error.text


def test_objects_are_boxed_on_the_image_and_the_slider_hides_low_scores_without_a_request(
        start_server, browser, tmp_path: Path) -> None:
    """A server given a tiny YOLOX-shaped detector file (a cat at 0.9, a cup at 0.4 on every 416-px image) with
    --detector-weights: the
    Analyze view draws both boxes over the picture; moving the score slider above 0.4 hides the cup, from the
    answer the page already has."""
    from tests.detect.onnx_fixtures import Obj, make_yolox_onnx

    weights = tmp_path / "weights"
    weights.mkdir()
    make_yolox_onnx(weights / "yolox_nano_coco80.onnx", [Obj(100, 60, 40, 20, label=15, obj=0.9),
                                                          Obj(300, 150, 64, 96, label=41, obj=0.8, cls=0.5, stride=16)])
    url = start_server("--detector-weights", str(weights / "yolox_nano_coco80.onnx"),
                       env={"PIXLEARN_CACHE": str(tmp_path / "cache")})
    server = _Live(url, start_server)
    image_path = tmp_path / "grey.png"
    image_path.write_bytes(_png(np.full((416, 416, 3), 90, np.uint8)))
    _console_errors(browser)  # reading the log empties it: what earlier tests in this browser logged is not ours
    _open(browser, url + "/#analyze")
    _wait_ops(browser, server)
    browser.find_element(By.ID, "op-canny").click()  # features only
    assert browser.find_element(By.ID, "feat-objects").is_selected()
    browser.find_element(By.ID, "file-input").send_keys(str(image_path))
    _wait(browser).until(EC.element_to_be_clickable((By.ID, "analyze-btn"))).click()
    try:
        _wait(browser, 60).until(lambda d: d.execute_script(
            "return document.querySelector('#objects-canvas').dataset.shown === '2'"))
    except TimeoutException:
        pytest.fail("the objects were not drawn\n" + _fail_context(browser, server))

    pixel = "return Array.from(document.querySelector('#objects-canvas').getContext('2d')" \
            ".getImageData(arguments[0], arguments[1], 1, 1).data.slice(0, 3))"
    grey = [90, 90, 90]
    assert browser.execute_script(pixel, 200, 300) == grey  # the image itself, where no box is
    assert browser.execute_script(pixel, 80, 62) != grey    # the cat's left edge (box 80, 50, 120, 70)
    assert browser.execute_script(pixel, 268, 150) != grey  # the cup's left edge (box 268, 102, 332, 198)
    rows = {li.get_attribute("data-class"): li for li in browser.find_elements(By.CSS_SELECTOR, "#objects-list .object-row")}
    assert set(rows) == {"cat", "cup"} and rows["cup"].is_displayed() and "40.0%" in rows["cup"].text
    renders = browser.find_element(By.ID, "objects-card").get_attribute("data-renders")

    slider = browser.find_element(By.ID, "objects-score")
    browser.execute_script("arguments[0].value = '0.5'; arguments[0].dispatchEvent(new Event('input'))", slider)
    _wait(browser).until(lambda d: d.execute_script("return document.querySelector('#objects-canvas').dataset.shown === '1'"))
    assert browser.execute_script(pixel, 268, 150) == grey  # the cup's box is gone from the drawing
    assert browser.execute_script(pixel, 80, 62) != grey    # the cat's stays
    rows = {li.get_attribute("data-class"): li for li in browser.find_elements(By.CSS_SELECTOR, "#objects-list .object-row")}
    assert not rows["cup"].is_displayed() and rows["cat"].is_displayed()
    assert browser.find_element(By.ID, "objects-score-value").text == "0.50"
    assert browser.find_element(By.ID, "objects-card").get_attribute("data-renders") == renders  # no new answer
    assert _console_errors(browser) == []
