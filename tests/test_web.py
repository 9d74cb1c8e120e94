"""The local web page (gan-stylizer serve): the work without Gradio; then a real server in a
subprocess on a free port, driven through its API (gradio_client) and through a real browser
(headless Chromium under Selenium), and stopped cleanly, leaving nothing behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_photo
from PIL import Image

from gan_stylizer.errors import ConfigError
from gan_stylizer.web.catalogue import Models, find_models
from gan_stylizer.web.page import safe_stem, stylize_files

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def models():
    entries, skipped = find_models(None)
    assert [m.key for m in entries][:1] and not skipped
    return Models(entries, "cpu", "32")


def test_stylize_files_names_each_output_by_model_and_strength(tmp_path, models):
    photo = write_photo(tmp_path / "my photo.png", (80, 60), seed=1)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    results = tmp_path / "results"
    low = stylize_files(models, results, [str(photo)], "starry_night", 0.0, False, "256", False)
    high = stylize_files(
        models, results, [str(photo), str(bad)], "starry_night", 1.0, False, "256", False
    )
    assert [p.name for p in low.files] == ["my_photo_starry_night-gan_s0.00.png"]
    assert [p.name for p in high.files] == ["my_photo_starry_night-gan_s1.00.png"]
    assert high.problems == ["notes.png: not an image file (cannot identify image format)"]
    a, b = (np.asarray(Image.open(o.files[0])) for o in (low, high))
    assert a.shape == b.shape == (192, 256, 3) and np.abs(a.astype(int) - b).mean() > 1
    strip = stylize_files(models, results, [str(photo)], "starry_night", 0.5, True, "256", True)
    assert Image.open(strip.files[0]).size == (5 * 256 + 4 * 4, 192)  # five strengths, gaps
    for bad_value, message in [(1.5, "strength=1.5"), (float("nan"), "strength=nan")]:
        with pytest.raises(ConfigError, match=message):
            stylize_files(models, results, [str(photo)], "starry_night", bad_value, False, "256", 0)
    with pytest.raises(ConfigError, match="size="):
        stylize_files(models, results, [str(photo)], "starry_night", 0.5, False, "99999", False)
    assert safe_stem("../../etc/pass wd.png") == "pass_wd" and safe_stem("...png") == "photo"


def test_the_menu_lists_checkpoints_and_exports_below_models_and_skips_broken_files(tmp_path):
    from conftest import write_checkpoint

    run = tmp_path / "outputs" / "the_scream" / "2026-12-02"
    write_checkpoint(run / "checkpoints" / "last.ckpt", channels=4, name="the_scream")
    (run / "checkpoints" / "broken.ckpt").write_text("not a checkpoint")
    onnx = tmp_path / "outputs" / "m.onnx"
    onnx.write_bytes(b"whatever")
    onnx.with_name("m.onnx.json").write_text('{"name": "great_wave", "strength": {}}')
    entries, skipped = find_models(tmp_path / "outputs")
    by_key = {m.key: m for m in entries}
    ckpt = by_key["the_scream/2026-12-02/checkpoints/last.ckpt"]
    assert ckpt.painting.startswith("Edvard Munch") and ckpt.style == "the_scream"
    assert by_key["m.onnx"].conditioned and by_key["m.onnx"].painting.startswith("Katsushika")
    assert len(skipped) == 1 and "broken.ckpt" in skipped[0]
    assert list(by_key)[:5] == sorted(list(by_key)[:5])  # the zoo first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python app.py` on a free port, in a folder of its own, with its own TMPDIR; stopped
    with SIGTERM at the end, which must leave both as they were."""
    cwd = tmp_path_factory.mktemp("serve_cwd")
    tmp = tmp_path_factory.mktemp("serve_tmp")
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp), "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), f"port={port}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    deadline = time.monotonic() + 120
    while not any(line.startswith("serving ") for line in lines):
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, "".join(lines)
        time.sleep(0.2)
    yield {"url": f"http://127.0.0.1:{port}/", "proc": proc, "lines": lines, "tmp": tmp}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, "".join(lines)
    assert "stopped; work folder removed" in "".join(lines)
    assert not list(tmp.iterdir()), list(tmp.iterdir())  # its work folder is gone
    assert not list(cwd.iterdir()), list(cwd.iterdir())  # nothing written where it ran


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1]) / 1024


@pytest.mark.slow
def test_the_server_stylizes_through_its_api_and_refuses_a_non_image(server, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    assert f"serving 5 models on {server['url']}" in "".join(server["lines"])  # 127.0.0.1
    client = Client(server["url"], verbose=False, download_files=str(tmp_path))
    photo = write_photo(tmp_path / "photo.jpg", (300, 200), seed=2)
    outputs = []
    for strength in (0.0, 1.0):
        _, files, status = client.predict(
            [handle_file(str(photo))], "starry_night", strength, False, "256", False,
            api_name="/stylize",
        )  # fmt: skip
        assert f"at strength {strength:.2f}" in status
        assert Path(files[0]).name == f"photo_starry_night-gan_s{strength:.2f}.png"
        outputs.append(np.asarray(Image.open(files[0])))
    assert outputs[0].shape == outputs[1].shape == (171, 256, 3)
    assert np.abs(outputs[0].astype(int) - outputs[1]).mean() > 1  # the strength matters
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"GIF89a not really")
    with pytest.raises(AppError, match="photo.png: corrupt GIF file"):
        client.predict(
            [handle_file(str(bad))], "starry_night", 0.5, False, "256", False, api_name="/stylize"
        )

    # Ten at once: all succeed, one at a time on the server (its queue), memory bounded.
    started = time.perf_counter()
    jobs = [
        client.submit(
            [handle_file(str(photo))],
            "great_wave",
            i / 9,
            False,
            "512",
            False,
            api_name="/stylize",
        )  # fmt: skip
        for i in range(10)
    ]
    latencies = []
    for job in jobs:
        _, files, _ = job.result(timeout=300)
        latencies.append(time.perf_counter() - started)
        assert Image.open(files[0]).size == (512, 341)
    peak = peak_rss_mib(server["proc"].pid)
    print(f"\n10 concurrent requests at 512 px: latencies {[round(x, 2) for x in latencies]} s;")
    print(f"server peak RSS {peak:.0f} MiB")
    assert peak < 4096


def chrome():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "no chromium/chromedriver: `apt-get install chromium chromium-driver` (.ci/run "
            "installs them)"
        )
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.mark.slow
def test_a_real_browser_uploads_slides_stylizes_and_sees_the_result(server, tmp_path):
    """SCREENSHOT_TO=docs/web.png keeps the screenshot (docs/web.md)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    photo = write_photo(tmp_path / "photo.png", (300, 200), seed=3)
    if os.environ.get("SCREENSHOT_PHOTO"):  # the documented screenshot uses a real photo
        photo = Path(os.environ["SCREENSHOT_PHOTO"])
    driver = chrome()
    try:
        driver.get(server["url"])
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#stylize"))
        driver.find_element(By.CSS_SELECTOR, "#photos input[type=file]").send_keys(str(photo))
        wait.until(lambda d: photo.suffix in d.find_element(By.CSS_SELECTOR, "#photos").text)
        number = driver.find_element(By.CSS_SELECTOR, "#strength input[type=number]")
        number.clear()
        number.send_keys("0.8", Keys.TAB)
        slider = driver.find_element(By.CSS_SELECTOR, "#strength input[type=range]")
        assert slider.get_attribute("value") == "0.8"
        next(e for e in driver.find_elements(By.CSS_SELECTOR, "label") if e.text == "512").click()
        driver.find_element(By.CSS_SELECTOR, "#stylize").click()

        def loaded(d):
            images = d.find_elements(By.CSS_SELECTOR, "#result img")
            script = "return arguments[0].complete && arguments[0].naturalWidth"
            return [i for i in images if d.execute_script(script, i)]

        image = wait.until(loaded)[0]
        size = driver.execute_script(
            "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image
        )
        with Image.open(photo) as original:
            w, h = original.size
        assert size == ([512, round(h * 512 / w)] if w >= h else [round(w * 512 / h), 512])
        assert "at strength 0.80" in driver.find_element(By.CSS_SELECTOR, "#status").text
        shot = tmp_path / "web.png"
        driver.save_screenshot(str(shot))
        assert Image.open(shot).size[0] > 0
        if os.environ.get("SCREENSHOT_TO"):
            shutil.copyfile(shot, os.environ["SCREENSHOT_TO"])
    finally:
        driver.quit()
