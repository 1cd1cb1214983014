"""The web app (applications/tools/webui.py) in a real browser: Debian's headless Chromium,
driven by Selenium through Debian's chromedriver, against the app started as a user starts it,
with random generator weights and the offline MTCNN detector; then, in-process, what the app does
with a run in progress when it stops, and an address it cannot listen on.

Off CI, a machine without Chromium, chromedriver, Gradio or Selenium skips the browser tests
(README: Run the tests); on CI (CI set) they fail instead.
"""
import importlib.util
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import cv2
import numpy as np
import pytest

from media import face_frame, probe, save_random_generator, speech_like, write_wav

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "applications", "tools", "webui.py")
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
AUDIO_SECONDS, FPS = 1.2, 25
WINDOW = (1100, 1150)
# Where the test saves its screenshot of the page (README's docs/webui.png was taken so).
SCREENSHOT = os.environ.get("PPGAN_WEBUI_SCREENSHOT")
START_SECONDS = 240  # import Paddle and Gradio, export the generator once (a loaded CI machine)
RUN_SECONDS = 180


def _require_browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    missing += [f"the {module} package" for module in ("gradio", "selenium")
                if importlib.util.find_spec(module) is None]  # found, not imported: Gradio is slow
    if missing:
        message = f"the browser tests need {', '.join(missing)} (see README.md, Run the tests)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port():
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        return probe_socket.getsockname()[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("webui_media")
    photo, blank = str(root / "face.png"), str(root / "blank.png")
    cv2.imwrite(photo, face_frame(320, 240, 200, 60, 20))
    cv2.imwrite(blank, np.full((240, 320, 3), 110, np.uint8))  # no face to find
    text = root / "notes.txt"
    text.write_text("not a video\n")
    return {"root": root, "photo": photo, "blank": blank, "text": str(text),
            "audio": str(write_wav(root / "speech.wav", speech_like(AUDIO_SECONDS))),
            "weights": str(save_random_generator(str(root / "random.pdparams")))}


@pytest.fixture(scope="module")
def app(media, tmp_path_factory):
    """The app as a user starts it, with its own HOME, TMPDIR and working directory (all
    empty at first), so that what it writes outside its working folder shows."""
    _require_browser()
    root = tmp_path_factory.mktemp("webui_app")
    dirs = {name: root / name for name in ("home", "tmp", "cwd")}
    for folder in dirs.values():
        folder.mkdir()
    port = _free_port()
    # PPGAN_HOME stays the suite's private cache: a static export of the same random weights
    # made by earlier tests is reused.
    env = dict(os.environ, HOME=str(dirs["home"]), TMPDIR=str(dirs["tmp"]), PYTHONPATH=ROOT)
    log = open(root / "app.log", "w+")
    proc = subprocess.Popen([sys.executable, APP, "--checkpoint_path", media["weights"],
                             "--port", str(port), "--face_detector", "mtcnn"],
                            cwd=dirs["cwd"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the app ended (status {proc.returncode}): {_log(log)[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            break
        except OSError:
            if time.monotonic() - started > START_SECONDS:
                proc.kill()
                pytest.fail(f"the app did not answer within {START_SECONDS} s")
            time.sleep(0.5)
    yield {"proc": proc, "url": url, "log": log, **dirs}
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def _log(log):
    log.flush()
    log.seek(0)
    return log.read()


@pytest.fixture(scope="module")
def browser(app, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with the driver's path below: no selenium-manager
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(flag)
    # Chromium keeps its singleton socket in a folder of TMPDIR that it leaves behind.
    service = Service(CHROMEDRIVER,
                      env={**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("chromium"))})
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()


def _open_page(browser, app):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(app["url"])
    WebDriverWait(browser, 60).until(lambda page: len(page.find_elements(
        By.CSS_SELECTOR, "#face input[type=file], #audio input[type=file]")) == 2)
    # Every text the progress bar shows, however briefly.
    browser.execute_script("""
        window.progressSeen = new Set();
        new MutationObserver(() => {
            for (const match of document.body.innerText.matchAll(/(lip sync|face detection)[^\\n]*/g))
                window.progressSeen.add(match[0]);
        }).observe(document.body, {subtree: true, childList: true, characterData: true});""")


def _lip_sync(browser, face, audio, fields=()):
    """Upload `face` and `audio`, type into the number `fields` ({element id: text}), press
    the button; the result's <video> or the error toast."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    for element, text in dict(fields).items():
        field = browser.find_element(By.CSS_SELECTOR, f"#{element} input")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(text, Keys.TAB)  # Gradio takes a number's value when it loses focus

    browser.find_element(By.CSS_SELECTOR, "#face input[type=file]").send_keys(face)
    browser.find_element(By.CSS_SELECTOR, "#audio input[type=file]").send_keys(audio)
    WebDriverWait(browser, 60).until(lambda page: page.find_elements(  # both uploaded
        By.CSS_SELECTOR, "#audio [data-testid^=waveform]")
        # The file's name shows, its suffix on a line of its own.
        and os.path.basename(face) in page.find_element(By.CSS_SELECTOR, "#face").text
        .replace("\n", ""))
    browser.find_element(By.CSS_SELECTOR, "#run").click()
    def toasts(page):  # a toast's text may show after the toast itself (under load)
        return [toast.text for toast in page.find_elements(By.CSS_SELECTOR,
                                                           "[data-testid=toast-text]")
                if toast.text.strip()]

    WebDriverWait(browser, RUN_SECONDS).until(lambda page: page.find_elements(
        By.CSS_SELECTOR, "#result video[src]") or toasts(page))
    errors = toasts(browser)
    return (None, errors[0]) if errors else (
        browser.find_element(By.CSS_SELECTOR, "#result video"), None)


def _video_state(browser):
    """The result video's state once the browser has decoded its first frame (or failed)."""
    return browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const video = document.querySelector('#result video');
        const report = () => done({duration: video.duration, width: video.videoWidth,
            height: video.videoHeight, ready: video.readyState, error: video.error && video.error.code,
            src: video.currentSrc});
        if (video.readyState >= 2 || video.error) report();
        else { video.addEventListener('loadeddata', report); video.addEventListener('error', report); }""")


def test_the_page_lip_syncs_a_photo_with_progress_and_a_playable_download(app, browser, media,
                                                                          tmp_path):
    from selenium.webdriver.common.by import By

    _open_page(browser, app)
    video, error = _lip_sync(browser, media["photo"], media["audio"])
    assert error is None, error
    state = _video_state(browser)
    assert state["error"] is None and state["ready"] >= 2  # decoded: Chromium plays it
    assert (state["width"], state["height"]) == (320, 240)
    assert abs(state["duration"] - AUDIO_SECONDS) <= 2 / FPS  # the audio's length, to 2 frames
    seen = browser.execute_script("return [...window.progressSeen]")
    assert any(text.startswith("lip sync") for text in seen), seen
    assert browser.find_elements(By.CSS_SELECTOR,
                                 "#result [aria-label=Download], #result a[download]")
    # The file the page serves (and downloads) is the result, inside the app's working folder.
    folders = os.listdir(app["tmp"])
    assert len(folders) == 1 and folders[0].startswith("ppgan-webui-")
    served = re.search(r"/file=(.*)$", urllib.parse.unquote(state["src"])).group(1)
    assert served.startswith(str(app["tmp"] / folders[0])) and served.endswith("face_lipsync.mp4")
    download = tmp_path / "download.mp4"
    with urllib.request.urlopen(state["src"], timeout=30) as response:
        download.write_bytes(response.read())
    videos, audios, seconds = probe(download)
    assert (videos, audios) == (1, 1) and abs(seconds - AUDIO_SECONDS) <= 2 / FPS + 0.03
    # Everything the page loaded came from the app: no fonts, scripts or analytics from outside.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert loaded and [url for url in loaded if not url.startswith(app["url"])] == []
    _save_screenshot(browser, SCREENSHOT or str(tmp_path / "webui.png"))


def _save_screenshot(browser, path):
    """The page as a PNG of 128 colours (README's picture: about a third of the full colour
    one's size)."""
    from PIL import Image  # Gradio's dependency

    page = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    assert page.width == WINDOW[0]
    page.quantize(128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _cli_error(media, face, tmp_path, capsys, *flags):
    """The one line wav2lip.py prints for these inputs (run in-process)."""
    from applications_cli import main  # noqa: imported through the path set in conftest

    code = main(["--face", face, "--audio", media["audio"], "--outfile", str(tmp_path / "out.mp4"),
                 "--checkpoint_path", media["weights"], "--engine", "eager",
                 "--face_detector", "mtcnn", *flags])
    assert code == 2
    return capsys.readouterr().err.strip().splitlines()[-1].removeprefix("wav2lip.py: error: ")


BAD_RUNS = {  # face, the page's number fields, the same settings as flags
    "a text file as the face": ("text", {}, ()),
    "a photo without a face": ("blank", {}, ()),
    "pads that leave no face box": ("photo", {"pad_left": "-200", "pad_right": "-200"},
                                    ("--pads", "0", "10", "-200", "-200")),
}


@pytest.mark.parametrize("case", BAD_RUNS)
def test_bad_input_shows_the_command_lines_one_line_message(app, browser, media, case, tmp_path,
                                                            capsys):
    """The page shows the line wav2lip.py prints for the same input and settings (with the
    upload's path in the app's folder), no traceback, and the app goes on."""
    face, fields, flags = BAD_RUNS[case]
    _open_page(browser, app)
    video, error = _lip_sync(browser, media[face], media["audio"], fields)
    assert video is None
    named = re.search(r"\S*" + re.escape(os.path.basename(media[face])), error)
    assert named, error
    uploaded = named.group(0)
    assert uploaded.startswith(str(app["tmp"])) and os.path.basename(uploaded) != uploaded
    expected = _cli_error(media, media[face], tmp_path, capsys, *flags)
    assert error == expected.replace(media[face], uploaded)
    assert "Traceback" not in _log(app["log"])


def test_the_generator_is_loaded_once_and_a_stop_leaves_nothing_behind(app):
    """After the runs above (each loads the generator when it has none), SIGTERM: the app
    stops with 143, removes its working folder, and wrote nothing into HOME, TMPDIR or its
    working directory (Paddle's import leaves empty folders in ~/.cache/paddle)."""
    proc = app["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    log = _log(app["log"])
    assert log.strip().splitlines()[-1] == "webui.py: stopped; working folder removed"
    # the generator's face encoder and the mouth blend's decoder, at start
    loads = re.findall(r"loading \S+ on cpu", log)
    assert len(loads) == 2 and log.index(loads[-1]) < log.index("Running on local URL")
    assert os.listdir(app["tmp"]) == [] and os.listdir(app["cwd"]) == []
    assert [files for _, _, files in os.walk(app["home"]) if files] == []


def test_a_stop_ends_the_run_in_progress_which_leaves_no_output(media, tmp_path):
    """What the app does on a stop signal with a run in progress: the run raises at its next
    progress report, unwinds through the pipeline's cleanup (no result, no partial file)
    and the stop returns once it has."""
    from ppgan.apps import Wav2LipPredictor
    from ppgan.apps.webui import STOP_WAIT_SECONDS, AppStopping, Runs

    base = Wav2LipPredictor(checkpoint_path=media["weights"], det_cache=False)
    runs = Runs(base.with_options, str(tmp_path))
    long_audio = str(write_wav(tmp_path / "long.wav", speech_like(2.0)))  # 50 frames
    reports, outcome = [], {}

    def stop():
        started = time.monotonic()
        runs.stop()
        outcome["stop_seconds"] = time.monotonic() - started

    stopper = threading.Thread(target=stop)

    def progress(done_total, desc, unit):
        reports.append((desc, *done_total))
        if desc == "lip sync" and not runs.stopping.is_set():
            stopper.start()  # a stop signal arrives while the run is under way
            runs.stopping.wait()

    def run():
        try:
            runs.run(media["photo"], long_audio, dict(face_detector="mtcnn"), progress)
        except AppStopping as err:
            outcome["stopped"] = err

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=RUN_SECONDS)
    stopper.join(timeout=RUN_SECONDS)
    assert not worker.is_alive() and "stopped" in outcome
    assert outcome["stop_seconds"] < STOP_WAIT_SECONDS  # it waited for the run, not in vain
    assert ("lip sync", 0, 50) in reports and ("lip sync", 50, 50) not in reports  # midway
    run_folders = [name for name in os.listdir(tmp_path) if name.startswith("run-")]
    assert len(run_folders) == 1 and os.listdir(tmp_path / run_folders[0]) == []


def test_an_address_in_use_is_refused_in_one_line_before_loading():
    from ppgan.apps.webui import AddressError, check_address

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AddressError, match=f"cannot listen on 127.0.0.1 port {port}: "
                                               "Address already in use; choose another --port"):
            check_address("127.0.0.1", port)
    check_address("127.0.0.1", port)  # free again


def test_the_page_controls_become_the_predictor_arguments():
    from ppgan.apps import webui

    settings = webui.run_settings("mtcnn", " 1 ", 0, 20, -5, 5, "hard", True, "gfpgan", False)
    assert settings == dict(face_detector="mtcnn", face_select="1", pads=(0, 20, -5, 5),
                            blend="hard", face_enhancement=True, enhancer="gfpgan", static=False)
    assert webui.run_settings("sfd", "  ", 0, 10, 0, 0, "mouth", False, "gpen",
                              True)["face_select"] == "largest"
