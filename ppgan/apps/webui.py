"""The web app: a local page that lip-syncs an uploaded face video or photo to uploaded speech.

`serve` loads the generator once, builds the page (`build_page`) over a factory of predictors
that share it, and serves it with Gradio on this machine only by default: one run at a time
(Gradio's queue), no share link, no analytics. Everything the app writes (Gradio's upload cache,
the results) goes into one private working folder, removed when the app ends, by Ctrl-C,
SIGTERM or SIGHUP (a run in progress is stopped first) or a normal exit.
"""
import atexit
import contextlib
import html
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from typing import Any, Callable, Iterator, Optional

from ..faceutils.detectors import DETECTORS
from ..faceutils.face_enhancement import ENHANCERS
from ..utils.checks import BLENDS
from ..utils.cli import error_ending
from ..utils.errors import UserError
from ..utils.progress import ProgressHook
from ..utils.video import InputError
from .wav2lip_predictor import Wav2LipPredictor

logger = logging.getLogger(__name__)

PredictorFactory = Callable[..., Wav2LipPredictor]
"""Makes the predictor of one run from the settings the page chose (constructor arguments)."""

# A stop waits this long for the run in progress to reach its next progress report and unwind.
STOP_WAIT_SECONDS = 60


class AddressError(UserError):
    """The app cannot listen on the address asked for."""


class AppStopping(Exception):
    """Raised inside a run when the app is stopping: the run unwinds through its own cleanup."""


@contextlib.contextmanager
def private_folder() -> Iterator[str]:
    """A new folder that only this user can read, for everything the app writes, removed on
    leaving (and at exit, if the process ends some other way). Gradio's upload cache goes into
    it: Gradio reads GRADIO_TEMP_DIR when imported, so import it inside the block."""
    folder = tempfile.mkdtemp(prefix="ppgan-webui-")
    remove = lambda: shutil.rmtree(folder, ignore_errors=True)  # noqa: E731
    atexit.register(remove)
    os.environ["GRADIO_TEMP_DIR"] = os.path.join(folder, "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        yield folder
    finally:
        remove()
        atexit.unregister(remove)


class Runs:
    """The page's runs, one at a time: each makes its predictor, writes into a folder of its own
    under `folder` and reports progress; `stop` ends the one in progress."""

    def __init__(self, make_predictor: PredictorFactory, folder: str):
        self.make_predictor = make_predictor
        self.folder = folder
        self.stopping = threading.Event()
        self.idle = threading.Semaphore(1)  # held by the run in progress

    def run(self, face: Optional[str], audio: Optional[str], settings: dict,
            progress: Callable[..., Any]) -> str:
        """The result video of `face` lip-synced to `audio` with these predictor settings;
        `progress` is a `gr.Progress`. Errors are the predictor's (a missing upload: an
        `InputError`)."""
        if not face or not audio:
            raise InputError("upload a face video or photo and an audio file first")
        with self.idle:
            if self.stopping.is_set():
                raise AppStopping("the app is stopping")
            run_folder = tempfile.mkdtemp(prefix="run-", dir=self.folder)
            name = os.path.splitext(os.path.basename(face))[0] or "face"
            outfile = os.path.join(run_folder, f"{name}_lipsync.mp4")
            predictor = self.make_predictor(**settings)
            return predictor.run(face, audio, outfile, progress=self._reporter(progress))

    def _reporter(self, progress: Callable[..., Any]) -> ProgressHook:
        def report(stage: str, done: int, total: int) -> None:
            if self.stopping.is_set():  # the pipeline reports often: a stop takes effect here
                raise AppStopping("the app is stopping")
            progress((done, total), desc=stage, unit="frames")
        return report

    def stop(self) -> None:
        """Stop the run in progress at its next progress report and wait for it to unwind."""
        self.stopping.set()
        if not self.idle.acquire(timeout=STOP_WAIT_SECONDS):  # kept: no run starts after
            logger.warning("the run in progress did not stop within %d s", STOP_WAIT_SECONDS)


def run_settings(detector: str, face_select: str, top: int, bottom: int, left: int, right: int,
                 blend: str, enhance: bool, enhancer: str, static: bool) -> dict:
    """The predictor arguments of the page's controls."""
    return dict(face_detector=detector, face_select=face_select.strip() or "largest",
                pads=(top, bottom, left, right), blend=blend, face_enhancement=enhance,
                enhancer=enhancer, static=static)


def build_page(runs: Runs, default_detector: str = "sfd"):
    """The page (a `gr.Blocks`): the uploads beside the settings, the button, the result."""
    import gradio as gr  # after `private_folder` (see there)

    def lip_sync(face, audio, *controls, progress=gr.Progress()):
        try:
            return runs.run(face, audio, run_settings(*controls), progress)
        except Exception as err:
            ending = error_ending(err)
            if ending is None:
                raise
            # Gradio shows the message as HTML: a file name is text.
            raise gr.Error(html.escape(ending[1]), print_exception=False) from None

    with gr.Blocks(title="Wav2Lip lip sync", analytics_enabled=False) as page:
        gr.Markdown("## Wav2Lip lip sync\nUpload a face (a video or a photo) and speech, "
                    "then **Lip-sync**. One run at a time; others wait in the queue.")
        with gr.Row():
            with gr.Column():
                face = gr.File(label="Face: a video or a photo", type="filepath", height=120,
                               elem_id="face")
                audio = gr.Audio(label="Speech: any audio file", type="filepath",
                                 sources=["upload"], editable=False, buttons=["download"],
                                 elem_id="audio")
            with gr.Column():
                controls = _settings_controls(gr, default_detector)
        start = gr.Button("Lip-sync", variant="primary", elem_id="run")
        result = gr.Video(label="Result", interactive=False, buttons=["download"], height=320,
                          elem_id="result")
        start.click(lip_sync, [face, audio, *controls], result, concurrency_limit=1)
    return page


def _settings_controls(gr, default_detector: str) -> list:
    """The controls of the run's settings, in `run_settings`'s order."""
    with gr.Row():
        detector = gr.Dropdown(list(DETECTORS), value=default_detector, label="Face detector",
                               info="mtcnn needs no download", elem_id="detector")
        face_select = gr.Textbox(
            "largest", label="Target face",
            info="largest, an index from the left (0: leftmost) or X,Y on the face",
            elem_id="face_select")
    with gr.Row():
        pads = [gr.Number(value, label=f"Pad {side}", precision=0, min_width=80,
                          elem_id=f"pad_{side}")
                for side, value in zip(("top", "bottom", "left", "right"), (0, 10, 0, 0))]
    blend = gr.Radio(list(BLENDS), value="mouth", label="Blend", elem_id="blend",
                     info="mouth: the lower half of the face box; face: the whole box, "
                          "feathered; hard: the original's paste")
    with gr.Row(equal_height=True):
        enhance = gr.Checkbox(False, label="Face enhancement (slow)", elem_id="enhance")
        enhancer = gr.Dropdown(list(ENHANCERS), value="gpen", show_label=False,
                               elem_id="enhancer")
    static = gr.Checkbox(False, label="Static: use only the video's first frame",
                         elem_id="static")
    return [detector, face_select, *pads, blend, enhance, enhancer, static]


def check_address(host: str, port: int) -> None:
    """Refuse an address the app cannot listen on, before minutes of loading (Gradio would
    only say so with a traceback after)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Gradio binds
            listener.bind((host, port))
    except OSError as err:  # socket.gaierror too: a host name that does not resolve
        raise AddressError(f"cannot listen on {host} port {port}: {err.strerror or err}; "
                           "choose another --port (or --host)") from None


def serve(host: str = "127.0.0.1", port: int = 7860, default_detector: str = "sfd",
          **predictor_settings: Any) -> None:
    """Load the generator, then serve the page at http://host:port until a stop signal
    (Ctrl-C, SIGTERM, SIGHUP: raised as KeyboardInterrupt inside `run_main`)."""
    check_address(host, port)
    with private_folder() as folder:
        logger.info("working folder (removed at exit): %s", folder)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's calls to itself
        base = Wav2LipPredictor(det_cache=False, **predictor_settings)  # uploads are one-offs
        base.generator()
        runs = Runs(base.with_options, folder)
        page = build_page(runs, default_detector)
        page.queue(default_concurrency_limit=1, api_open=False)
        page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=True,
                    ssr_mode=False, pwa=False, mcp_server=False, inbrowser=False)
        try:
            while True:
                time.sleep(1)
        finally:
            runs.stop()
            page.close()
