"""The web page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium): upload
a bundled sample, see the AoP and the overlay, download the JSON, take a non-blank screenshot.

Skipped when Chromium is not installed, except under ``PARTUS_REQUIRE_BROWSER=1`` (set by ``.ci/run``,
which installs it), where a missing browser is a failure."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "partus" / "samples" / "psfhs"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("PARTUS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium/chromedriver missing in CI (.ci/run installs the Debian packages)")
        pytest.skip("chromium and chromedriver are not installed (Debian: apt install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1100",
    ):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.downloads = downloads
    yield driver
    driver.quit()


def _wait(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_upload_a_sample_and_see_the_measurement(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    sample = SAMPLES / "images" / "04200.png"
    expected = httpx.post(f"{server.url}/v1/measure", files={"files": (sample.name, sample.read_bytes())}).json()
    aop = expected["results"][0]["aop_deg"]

    browser.get(server.url + "/")
    assert "Research tool, not a medical device" in browser.find_element(By.ID, "disclaimer").text
    _wait(lambda: "model" in browser.find_element(By.ID, "model").text, what="the model id")
    assert expected["model"] in browser.find_element(By.ID, "model").text

    browser.find_element(By.ID, "file").send_keys(str(sample))  # the drop zone's file input
    shown = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, ".result .aop"), what="a result")[0].text
    assert shown == f"{aop:.1f}°"
    assert "Measurable" in browser.find_element(By.CSS_SELECTOR, ".result .verdict").text
    reading = browser.find_element(By.CSS_SELECTOR, ".result .reading").text
    assert "120°" in reading and "Kalache" in reading
    img = browser.find_element(By.CSS_SELECTOR, ".result img.overlay")
    assert _wait(lambda: browser.execute_script("return arguments[0].naturalWidth", img), what="the overlay") >= 512

    browser.find_element(By.ID, "download-json").click()
    target = browser.downloads / "partus-results.json"
    _wait(target.is_file, what="the JSON download")
    (row,) = json.loads(_wait(target.read_text, what="the JSON content"))
    assert row["filename"] == "04200.png" and row["aop_deg"] == pytest.approx(aop) and row["status"] == "ok"

    shot = tmp_path / "page.png"
    assert browser.save_screenshot(str(shot))
    pixels = cv2.imread(str(shot))
    assert pixels is not None and pixels.shape[0] > 500 and pixels.std() > 20  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # the ultrasound overlay is on it
    Path(os.environ.get("PARTUS_SCREENSHOT", tmp_path / "keep.png")).write_bytes(shot.read_bytes())


def test_page_reports_a_refused_upload(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    browser.get(server.url + "/")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    status = browser.find_element(By.ID, "status")
    _wait(lambda: "Error" in status.text, what="the error message")
    assert "not an accepted image" in status.text


def test_upload_a_clip_and_see_its_summary_and_plot(server, browser, tmp_path):
    from _helpers import write_sample_video
    from selenium.webdriver.common.by import By

    clip = tmp_path / "sweep.avi"
    write_sample_video(clip, 16)
    browser.get(server.url + "/")
    _wait(lambda: "model" in browser.find_element(By.ID, "model").text, what="the model id")
    browser.find_element(By.ID, "clip-file").send_keys(str(clip))
    result = browser.find_element(By.ID, "clip-result")
    _wait(result.is_displayed, timeout=90, what="the clip summary")
    assert browser.find_element(By.ID, "clip-name").text == "sweep.avi"
    summary = browser.find_element(By.ID, "clip-summary").text
    assert "16 frames" in summary and "standard-plane frames" in summary
    aop = browser.find_element(By.ID, "clip-aop").text
    assert aop.endswith("°") or aop == "–"
    for img in ("clip-plot", "clip-best"):
        element = browser.find_element(By.ID, img)
        if element.is_displayed():
            width = _wait(lambda e=element: browser.execute_script("return arguments[0].naturalWidth", e), what=img)
            assert width > 100
    assert "Error" not in browser.find_element(By.ID, "clip-status").text
