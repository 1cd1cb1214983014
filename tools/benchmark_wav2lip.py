"""Benchmark inference on this machine: generator, detectors, and end to end on generated clips.

    python tools/benchmark_wav2lip.py                     # 10 s and 60 s 720p clips
    python tools/benchmark_wav2lip.py --clips 10 --skip-detectors

Reports frames/s of the generator alone (Paddle Inference in each CPU precision with its output's
difference from fp32, eager, and the same layers in PyTorch as the original runs them, in fp32 and,
on a CPU with bf16 units, bf16 autocast, when torch is installed), of each face detector on a 720p
frame (full resolution and the pipeline's reduced copy), and end to end: seconds of compute per
second of video, the seconds of each stage (start-up, detection, lip sync: from when the command's
progress bars show) and peak RSS, each clip in a fresh process (at --precision auto); faces/s of the
face enhancers (with --paddlegan CHECKOUT, PaddleGAN's own code beside ours). Weights are random
(the speed of a network does not depend on its values); the clips show a real face photo
(scikit-image's astronaut) moving over a 720p background, with speech-like audio.

The code a CPU with fewer units would run can be timed on this one by capping the instructions
oneDNN (Paddle's and PyTorch's kernels) and PyTorch's own kernels use, for example AVX2 only:
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python tools/benchmark_wav2lip.py ...
(AVX512_CORE_VNNI: int8 units without bf16 ones). The report names the cap, "auto" follows it,
and bf16 is timed only where the cap leaves bf16 units. The cores stay this CPU's.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

from ppgan.faceutils.detectors import DETECTORS  # noqa: E402
from ppgan.utils.checks import comma_separated, positive_int  # noqa: E402
from ppgan.utils.cli import (DETECTION_SIZE, NON_NEGATIVE_INT, POSITIVE_INT,  # noqa: E402
                             OneLineParser, arg_type, exit_with, report, run_main)

PROG = "benchmark_wav2lip"
FPS = 25
WIDTH, HEIGHT = 1280, 720


def face_frame(shift: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The face photo, two thirds of the frame high, `shift` pixels right of the centre."""
    from ppgan.data_preparation.samples import face_frame as photo_frame

    size = height * 2 // 3
    return photo_frame(width, height, size, (width - size) // 2 + shift, height // 8)


def make_clip(folder: str, seconds: int, width: int = WIDTH, height: int = HEIGHT) -> tuple:
    """An H.264 clip of a face swaying left and right, and a WAV of the same length (kept in
    `folder` for later runs; each appears only once complete)."""
    from ppgan.data_preparation.samples import speech_like
    from ppgan.utils.atomic import atomic_path
    from ppgan.utils.audio import write_wav
    from ppgan.utils.video import VideoWriter

    video = os.path.join(folder, f"face_{height}p_{seconds}s.mp4")
    audio = os.path.join(folder, f"speech_{seconds}s.wav")
    if not os.path.exists(audio):
        with atomic_path(audio) as partial:
            write_wav(partial, speech_like(seconds))
    if not os.path.exists(video):
        with VideoWriter(video, width, height, FPS, audio) as writer:
            for i in range(seconds * FPS):
                writer.write(face_frame(int(40 * np.sin(i / 15)), width, height))
    return video, audio


def random_weights(folder: str) -> str:
    from ppgan.data_preparation.samples import save_random_generator

    path = os.path.join(folder, "wav2lip_random.pdparams")
    return path if os.path.exists(path) else save_random_generator(path)


def time_calls(fn, repeats: int) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def cpu_precisions() -> tuple:
    """The precisions of the static engine on this CPU, each timed for the detectors and
    enhancers: bf16 only where oneDNN may use bf16 units (elsewhere it runs as fp32). The
    generator and S3FD also have int8 (opt-in: `ppgan.apps.generator_int8`, `sfd_int8`), on
    any CPU."""
    from ppgan.utils.cpu import has_bf16_units

    return ("fp32", "bf16") if has_bf16_units() else ("fp32",)


def bench_generator(weights: str, batch: int, engines, precisions=("fp32",)) -> dict:
    """Frames/s of the generator as the pipeline runs it: `batch` frames in steps of
    CPU_CHUNK; the static engine in each of `precisions` (fp32 among them), drawing whole
    faces (as the face and hard blends need) and only the lower face (LOWER_FIRST_ROW on, as
    the default mouth blend runs it), each output's difference from fp32's whole faces (in
    levels of 255), and the photo path (face features encoded once, lower face) in the
    precision "auto" picks."""
    from ppgan.apps.generator_runner import CPU_CHUNK, load_generator
    from ppgan.models.generators.wav2lip import LOWER_FIRST_ROW
    from ppgan.utils.device import resolve_precision

    rng = np.random.default_rng(0)
    mel = rng.standard_normal((batch, 1, 80, 16)).astype(np.float32)
    faces = rng.random((batch, 6, 96, 96)).astype(np.float32)
    steps = [slice(i, i + CPU_CHUNK) for i in range(0, batch, CPU_CHUNK)]
    label = f"batch {batch} in {CPU_CHUNK}-frame steps"
    auto = resolve_precision("auto", "cpu")
    speeds, outputs, fell_back = {}, {}, []
    runs = [("static", p) for p in precisions] if "static" in engines else []
    runs += [(engine, "fp32") for engine in engines if engine != "static"]
    for engine, precision in runs:
        run = load_generator(weights, engine=engine, device="cpu", precision=precision)
        repeats = 3 if engine == "static" else 1
        whole = lambda: np.concatenate([run(mel[s], faces[s]) for s in steps])  # noqa: E731
        if engine == "static":
            outputs[precision] = whole()
        speeds[f"generator ({engine} {precision}, {label})"] = batch / time_calls(whole, repeats)
        if engine != "static":
            continue
        lower = lambda: np.concatenate([run.decode_lower(mel[s], run.encode_face(faces[s]))  # noqa: E731
                                        for s in steps])
        outputs[f"{precision} lower face"] = lower()
        speeds[f"generator (static {precision}, lower face for the mouth blend, {label})"] = (
            batch / time_calls(lower, repeats))
        if precision == auto:
            face = run.encode_face(faces[:1])
            skips = [[np.repeat(x, len(mel[s]), axis=0) for x in face] for s in steps]
            seconds = time_calls(lambda: [run.decode_lower(mel[s], k)
                                          for s, k in zip(steps, skips)], repeats)
            speeds[f"generator (static {precision}, photo: face encoded once, lower face, "
                   f"{label})"] = batch / seconds
        if run.precisions != [precision]:  # a program failed in it here (logged): fp32 ran
            fell_back.append(precision)
    whole_faces = outputs["fp32"]
    differences = {name: levels_off(out, whole_faces[:, :, LOWER_FIRST_ROW:] if "lower" in name
                                    else whole_faces)
                   for name, out in outputs.items() if name != "fp32"}
    # What "auto" chooses between, on the default path: a CPU where its rule (bf16 where bf16
    # outruns fp32) picks wrong shows it here.
    choices = {p: speeds[f"generator (static {p}, lower face for the mouth blend, {label})"]
               for p in precisions if p in ("fp32", "bf16")}
    return {"speeds": speeds, "auto_precision": auto,
            "fastest_of_fp32_and_bf16": max(choices, key=choices.get),
            "difference_from_static_fp32": differences,
            **({"precisions_that_ran_in_fp32": fell_back} if fell_back else {})}


def levels_off(output: np.ndarray, reference: np.ndarray) -> dict:
    """Mean and largest difference of two [0, 1] images, in levels of 255."""
    levels = np.abs(output.astype(np.float64) - reference) * 255
    return {"mean_levels": float(levels.mean()), "max_levels": float(levels.max())}


def bench_torch_generator(batch: int) -> dict:
    """Frames/s of the original's generator layers in PyTorch (eager, no_grad, one call of
    `batch` frames, as the original inference.py runs it), if torch is installed: in fp32, and
    under bf16 autocast where the CPU has bf16 units (PyTorch's fastest CPU path there). The
    network is the independent torch implementation the tests check the Paddle one against."""
    try:
        import torch
    except ImportError:
        return {}
    from ppgan.models.torch_reference import TorchWav2Lip
    from ppgan.utils.cpu import has_bf16_units

    torch.set_num_threads(os.cpu_count() or 1)
    net = TorchWav2Lip().eval()
    rng = np.random.default_rng(0)
    mel = torch.from_numpy(rng.standard_normal((batch, 1, 80, 16)).astype(np.float32))
    faces = torch.from_numpy(rng.random((batch, 6, 96, 96)).astype(np.float32))
    results = {}
    for precision in ("fp32", "bf16") if has_bf16_units() else ("fp32",):
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
            seconds = time_calls(lambda: net(mel, faces), 1)
        results[f"generator (PyTorch {torch.__version__} {precision}, the original's layers, "
                f"batch {batch})"] = batch / seconds
    return results


def random_detector_weights(folder: str, name: str):
    """Random weights for the detectors whose real weights must be downloaded (speed and memory
    do not depend on the values; their detections are noise); None for MTCNN (weights shipped)."""
    import paddle

    from ppgan.faceutils.face_detection.detection.blazeface import BlazeFace
    from ppgan.faceutils.face_detection.detection.sfd import S3FD

    nets = {"sfd": S3FD, "blazeface": BlazeFace}
    if name not in nets:
        return None
    from ppgan.utils.atomic import atomic_path

    path = os.path.join(folder, f"{name}_random.pdparams")
    if not os.path.exists(path):
        paddle.seed(0)
        with atomic_path(path) as partial:
            paddle.save(nets[name]().state_dict(), partial)
    return path


def bench_detectors(folder: str, names, det_max_size: int, int8: bool = True) -> dict:
    import cv2

    from ppgan.faceutils.face_boxes import BoxDetector
    from ppgan.faceutils.face_detection import FaceAlignment

    frames = [face_frame(0)] * 4
    results = {}
    for name, precision in [(name, p) for name in names for p in _detector_precisions(name, int8)]:
        aligner = FaceAlignment(face_detector=name, path_to_detector=random_detector_weights(folder, name),
                                **({"precision": precision} if precision else {}))
        if precision:
            name = f"{name} {precision}"
        for size in (0, det_max_size):
            detector = BoxDetector(aligner, batch_size=4, max_size=size)
            scale = 1.0 if size == 0 else size / WIDTH
            copies = [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) for f in frames]
            seconds = time_calls(lambda: detector.detector.get_detections_for_batch(np.stack(copies)), 1)
            label = "full 720p" if size == 0 else f"longest side {size}"
            results[f"{name} ({label})"] = len(frames) / seconds
    return results


def _detector_precisions(name: str, int8: bool) -> tuple:
    """S3FD follows --precision (each CPU precision timed, int8 if `int8`); the other
    detectors run in fp32."""
    return cpu_precisions() + (("int8",) if int8 else ()) if name == "sfd" else (None,)


def random_enhancer_weights(folder: str, name: str) -> str:
    """Random 512-px weights of the `name` enhancer, saved once in `folder`."""
    import paddle
    from ppgan.faceutils.face_enhancement import ENHANCERS

    path = os.path.join(folder, f"{name}_512_random.pdparams")
    if not os.path.exists(path):
        paddle.save(ENHANCERS[name].build(512).state_dict(), path)
    return path


# Timed calls of each enhancer after its warm-up: one call takes seconds, and single calls
# varied by a tenth from run to run on the same host.
ENHANCER_REPEATS = 2

# Run in the shim of PaddleGAN's sources (tools/paddlegan_reference.py; argv: enhancer name,
# weights file, GFPGANv1's arguments, repeats): the seconds its own code takes for one 512-px
# face, the mean of that many calls after a warm-up call. GPEN through its FaceEnhancement;
# GFPGAN's class always downloads its weights, so its network is called as that class calls
# it (the network is nearly all the time).
PADDLEGAN_ENHANCER_TIMING = """
import json, sys, time
import numpy as np
import paddle
name, weights, gfpgan_arguments, REPEATS = *sys.argv[1:4], int(sys.argv[4])
face = np.random.default_rng(0).integers(0, 256, (512, 512, 3), np.uint8)
if name == "gpen":
    from ppgan.faceutils.face_enhancement.face_enhance import FaceEnhancement
    enhance = FaceEnhancement(path_to_enhance=weights).enhance_from_image
else:
    from ppgan.models.generators.gfpganv1_arch import GFPGANv1
    net = GFPGANv1(**json.loads(gfpgan_arguments))
    net.load_dict(paddle.load(weights))
    net.eval()
    def enhance(image):
        x = paddle.to_tensor(image).transpose([2, 0, 1]).unsqueeze(0).astype("float32")
        with paddle.no_grad():
            return net((x / 255.0 - 0.5) / 0.5)[0].numpy()
enhance(face)
start = time.perf_counter()
for _ in range(REPEATS):
    enhance(face)
print((time.perf_counter() - start) / REPEATS)
"""


def paddlegan_enhancer_seconds(paddlegan: str, name: str, weights: str) -> float:
    """Seconds a 512-px face of PaddleGAN's own `name` enhancer takes, run from the PaddleGAN
    checkout `paddlegan` in a process of its own (as tools/compare_with_paddlegan.py runs it),
    on `weights`."""
    from compare_with_paddlegan import GFPGAN_512
    from paddlegan_reference import make_shim, shim_environment

    with tempfile.TemporaryDirectory(prefix="paddlegan-shim-") as folder:
        shim = make_shim(os.path.abspath(paddlegan), folder)
        done = subprocess.run([sys.executable, "-c", PADDLEGAN_ENHANCER_TIMING, name, weights,
                               json.dumps(GFPGAN_512), str(ENHANCER_REPEATS)], cwd=shim,
                              env=shim_environment(shim), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"PaddleGAN's {name} failed: {done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def bench_enhancers(folder: str, names, paddlegan: Optional[str] = None) -> dict:
    """Faces/s of each enhancer at 512 px: as the pipeline runs it (Paddle Inference with oneDNN,
    batches of ENHANCER_BATCH, each CPU precision, with its output's difference from the eager
    network), eagerly one face per call, as PaddleGAN runs its FaceEnhancement, and (with
    `paddlegan`, a PaddleGAN checkout) PaddleGAN's own code on the same weights."""
    from ppgan.apps.face_enhancer import ENHANCER_BATCH, load_enhancer

    results = {}
    faces = np.random.default_rng(0).integers(0, 256, (ENHANCER_BATCH, 512, 512, 3), np.uint8)
    for name in names:
        path = random_enhancer_weights(folder, name)
        if paddlegan:
            seconds = paddlegan_enhancer_seconds(paddlegan, name, path)
            results[f"{name} 512 px (PaddleGAN's own code, eager, 1 face per call)"] = 1 / seconds
        eager = load_enhancer(name, path, "eager", "cpu", 0)
        eager.batch_size = 1
        seconds = time_calls(lambda: eager.restore(faces[:1]), ENHANCER_REPEATS)
        results[f"{name} 512 px (eager, 1 face per call, PaddleGAN's way)"] = 1 / seconds
        reference = eager.restore(faces) / 255.0
        for precision in cpu_precisions():
            enhancer = load_enhancer(name, path, "static", "cpu", 0, precision)
            restored = []  # the timed calls' outputs, measured against eager's below
            seconds = time_calls(lambda: restored.append(enhancer.restore(faces)),
                                 ENHANCER_REPEATS)
            key = f"{name} 512 px (static {precision}, {ENHANCER_BATCH} faces per call)"
            results[key] = ENHANCER_BATCH / seconds
            results[f"{key}: levels off eager"] = levels_off(restored[-1] / 255.0, reference)
    return results


def _peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process: its peak RSS since its last exec (Linux).

    Not `wait4`'s ru_maxrss: across fork + exec that keeps the parent's peak, here the
    benchmark's own, and would hide the pipeline's.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return [int(c) for c in children.read().split()]
    except OSError:
        return []


# The CLI's progress bars, drawn as each stage starts: (bar, the stage that ends there).
STAGE_BARS = ((b"face detection", "start-up: imports, audio and its mel, networks"),
              (b"lip sync", "face detection"))
LAST_STAGE = "lip sync, encoding and exit"


def _read_stages(stream, start: float, stderr: list, starts: dict) -> None:
    """Read `stream` (the CLI's stderr) to its end into `stderr`, noting in `starts` when each
    of STAGE_BARS first shows (seconds after `start`)."""
    chunks, tail = [], b""  # tail: enough of the text before for a bar split between reads
    longest = max(len(bar) for bar, _ in STAGE_BARS)
    for chunk in iter(lambda: os.read(stream.fileno(), 1 << 16), b""):
        chunks.append(chunk)
        recent = tail + chunk
        tail = recent[-longest:]
        for bar, _ in STAGE_BARS:
            if bar not in starts and bar in recent:
                starts[bar] = time.perf_counter() - start
    stderr.append(b"".join(chunks))


def stage_seconds(starts: dict, wall: float) -> dict:
    """Each stage's seconds from when its bar showed to when the next one did (the last to the
    process's end); empty if a bar never showed (a photo detects no frames)."""
    if any(bar not in starts for bar, _ in STAGE_BARS):
        return {}
    bounds = [0.0] + [starts[bar] for bar, _ in STAGE_BARS] + [wall]
    names = [name for _, name in STAGE_BARS] + [LAST_STAGE]
    return {name: bounds[k + 1] - bounds[k] for k, name in enumerate(names)}


def failed_run(returncode: int, stderr: bytes) -> dict:
    """A child run's failure as a result row: its exit status and the last line it wrote."""
    lines = stderr.decode(errors="replace").strip().splitlines()
    return {"failed": f"exit {returncode}: {lines[-1] if lines else 'no message'}"}


def bench_end_to_end(video: str, audio: str, weights: str, seconds: int, extra) -> dict:
    outfile = os.path.join(os.path.dirname(video), "out_" + os.path.basename(video))
    command = [sys.executable, os.path.join(ROOT, "applications", "tools", "wav2lip.py"),
               "--face", video, "--audio", audio, "--outfile", outfile,
               "--checkpoint_path", weights, *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peaks = {}  # pid -> peak RSS in MB, sampled until the process ends
    stderr, starts = [], {}
    reader = threading.Thread(target=_read_stages, args=(process.stderr, start, stderr, starts),
                              daemon=True)
    reader.start()
    try:
        while process.poll() is None:
            for pid in [process.pid] + _children(process.pid):
                peaks[pid] = max(peaks.get(pid, 0.0), _peak_rss_mb(pid))
            time.sleep(0.2)
    except BaseException:  # interrupted: the run stops too (SIGTERM: it cleans up after itself)
        process.terminate()
        process.wait()
        raise
    wall = time.perf_counter() - start
    reader.join()
    if process.returncode != 0:  # recorded, and the other runs go on: a benchmark takes long
        return failed_run(process.returncode, stderr[0])
    return {"seconds_per_video_second": wall / seconds, "wall_seconds": wall,
            "stage_seconds": stage_seconds(starts, wall),
            "peak_rss_mb": peaks.get(process.pid, 0.0),
            "ffmpeg_peak_rss_mb": max([v for k, v in peaks.items() if k != process.pid], default=0.0)}


def bench_stream(face: str, audio: str, weights: str, detector: str) -> dict:
    """The live stream (Wav2LipStream) on `face` and `audio`, in the calling process: paced at the
    speed of speech, the latency from a frame's audio to the frame (from the moment its first
    sample arrives until the frame goes to ffmpeg; it includes the 0.21 s the frame's mel
    window takes to arrive), and unpaced, the frames/s it sustains."""
    from ppgan.apps import Wav2LipStream
    from ppgan.apps.wav2lip_stream import file_chunks
    streamer = Wav2LipStream(checkpoint_path=weights, face_detector=detector, det_cache=False)
    results = {}
    for realtime in (True, False):
        sent = {}
        started = []

        def chunks():
            for chunk in file_chunks(audio, realtime=realtime):
                started.append(started[0] if started else time.perf_counter())
                yield chunk

        out = os.path.join(os.path.dirname(face), "stream_" + os.path.basename(face) + ".mp4")
        streamer.run(face, chunks(), out, audio,
                     on_frame=lambda i, _f: sent.setdefault(i, time.perf_counter()))
        times = np.array([sent[i] for i in sorted(sent)])
        if realtime:
            # The first chunk arrives one chunk after the paced clock starts.
            clock = started[0] - 0.04
            fps = len(times) / (times[-1] - clock)
            latency = times - (clock + np.arange(len(times)) / 25.0)
            results["paced: latency, audio to frame, s (median, 95th percentile, max)"] = [
                round(float(np.median(latency)), 3), round(float(np.percentile(latency, 95)), 3),
                round(float(latency.max()), 3)]
            results["paced: frames/s over the stream"] = round(float(fps), 2)
        else:
            results["unpaced: sustained frames/s"] = round(float(
                (len(times) - 1) / (times[-1] - times[0])), 2)
    return results


def stream_in_own_process(face: str, audio: str, weights: str, detector: str) -> dict:
    """`bench_stream` in a process of its own, as a stream runs: in this one, after the
    enhancers' timings, the video stream's median latency was 0.98 s against 0.27 s alone."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "stream.json")
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--stream_run", face,
                               audio, weights, detector, out], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        if done.returncode != 0:
            return failed_run(done.returncode, done.stderr)
        with open(out) as results:
            return json.load(results)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=__doc__.strip().splitlines()[0])
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "wav2lip_bench"))
    seconds_list = comma_separated(positive_int, "integers >= 1, comma-separated")
    parser.add_argument("--clips", type=arg_type(seconds_list), default="10,60",
                        help="720p clip lengths in seconds")
    parser.add_argument("--clip_1080p", type=NON_NEGATIVE_INT, default=10,
                        help="length of a 1080p clip in seconds (0: none)")
    parser.add_argument("--batch", type=POSITIVE_INT, default=128, help="generator batch size")
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--e2e_detector", default="mtcnn",
                        help="detector for the end-to-end runs (mtcnn: real weights, offline)")
    parser.add_argument("--det_max_size", type=DETECTION_SIZE, default=360)
    parser.add_argument("--no_sfd_1080p", action="store_true",
                        help="skip the end-to-end run of the 1080p clip with S3FD, the default "
                             "detector: its random weights see faces everywhere, so the motion "
                             "check detects nearly every frame (slow), but its memory is real")
    parser.add_argument("--enhancers", default="gpen,gfpgan",
                        help="face enhancers to time, comma-separated ('' for none)")
    parser.add_argument("--paddlegan", metavar="DIR",
                        help="a PaddleGAN source checkout: also time its own GPEN "
                             "(FaceEnhancement) and GFPGANv1 on the same weights")
    parser.add_argument("--e2e_enhanced_seconds", type=NON_NEGATIVE_INT, default=4,
                        help="length of a 720p clip run end to end with --face_enhancement "
                             "(GPEN, random weights) and without it (0: none)")
    parser.add_argument("--stream_seconds", type=NON_NEGATIVE_INT, default=10,
                        help="length of the audio of the live-stream runs (a 720p photo and the "
                             "720p clip; 0: none)")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--skip-generator", action="store_true")
    parser.add_argument("--skip-detectors", action="store_true")
    parser.add_argument("--skip-int8", action="store_true",
                        help="leave the generator's and S3FD's int8 rows out (they are "
                             "quantised first: about a minute on 2 cores)")
    parser.add_argument("--json", help="also write the results here")
    # Internal: one `bench_stream` run, its results written to OUT (`stream_in_own_process`).
    parser.add_argument("--stream_run", nargs=5, help=argparse.SUPPRESS,
                        metavar=("FACE", "AUDIO", "WEIGHTS", "DETECTOR", "OUT"))
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # OSError: an unwritable workdir or --json path.
    work = (lambda: stream_run(*args.stream_run)) if args.stream_run else lambda: benchmark(args)
    return run_main(PROG, work, (OSError,),
                    interrupted="interrupted: no results written")


def stream_run(face: str, audio: str, weights: str, detector: str, out: str) -> int:
    _use_all_cores()
    with open(out, "w") as results:
        json.dump(bench_stream(face, audio, weights, detector), results)
    return 0


def _use_all_cores() -> None:
    import paddle

    paddle.set_flags({"FLAGS_paddle_num_threads": os.cpu_count() or 1})


def benchmark(args: argparse.Namespace) -> int:
    from ppgan.apps.generator_runner import CPU_CHUNK
    from ppgan.utils.atomic import atomic_path
    from ppgan.utils.cpu import cpu_summary

    os.makedirs(args.workdir, exist_ok=True)
    os.environ.setdefault("PPGAN_HOME", os.path.join(args.workdir, "cache"))

    import paddle

    _use_all_cores()
    weights = random_weights(args.workdir)
    results = {"machine": f"{os.cpu_count()} cores of {cpu_summary()}, paddle "
                          f"{paddle.__version__}, load average {os.getloadavg()[0]:.1f} at the start",
               "date": time.strftime("%Y-%m-%d")}
    if not args.skip_generator:
        precisions = cpu_precisions() + (() if args.skip_int8 else ("int8",))
        generator = bench_generator(weights, args.batch, ("static", "eager"), precisions)
        torch_speeds = bench_torch_generator(args.batch)
        results["frames_per_second"] = {**generator.pop("speeds"), **torch_speeds}
        results["generator"] = generator
        if torch_speeds:  # PyTorch's figures are the original's: whole faces
            speeds, auto = results["frames_per_second"], generator["auto_precision"]
            label = f"batch {args.batch} in {CPU_CHUNK}-frame steps"
            fastest = max(torch_speeds.values())
            generator["auto_vs_fastest_pytorch"] = speeds[f"generator (static {auto}, {label})"] / fastest
            generator["auto_lower_face_vs_fastest_pytorch"] = speeds[
                f"generator (static {auto}, lower face for the mouth blend, {label})"] / fastest
    if not args.skip_detectors:
        results.setdefault("frames_per_second", {}).update(
            bench_detectors(args.workdir, args.detectors.split(","), args.det_max_size,
                            not args.skip_int8))
    enhancers = [name for name in args.enhancers.split(",") if name]
    if enhancers:
        results.setdefault("faces_per_second", {}).update(
            bench_enhancers(args.workdir, enhancers, args.paddlegan))
    if args.stream_seconds:
        import cv2

        video, audio = make_clip(args.workdir, args.stream_seconds)
        photo = os.path.join(args.workdir, "face_720p.png")
        cv2.imwrite(photo, face_frame(0))
        for name, face in (("photo", photo), ("video", video)):
            results[f"stream_720p_{name}_{args.stream_seconds}s"] = stream_in_own_process(
                face, audio, weights, args.e2e_detector)
    clips = [] if args.skip_end_to_end else [(seconds, 1280, 720) for seconds in args.clips]
    clips += [(args.clip_1080p, 1920, 1080)] if args.clip_1080p and not args.skip_end_to_end else []
    for seconds, width, height in clips:
        video, audio = make_clip(args.workdir, seconds, width, height)
        results[f"end_to_end_{height}p_{seconds}s"] = bench_end_to_end(
            video, audio, weights, seconds, ["--face_detector", args.e2e_detector, "--no_det_cache",
                                             "--det_max_size", str(args.det_max_size)])
    if args.e2e_enhanced_seconds:
        seconds = args.e2e_enhanced_seconds
        video, audio = make_clip(args.workdir, seconds)
        common = ["--face_detector", args.e2e_detector, "--no_det_cache"]
        results[f"end_to_end_720p_{seconds}s_without_enhancement"] = bench_end_to_end(
            video, audio, weights, seconds, common)
        results[f"end_to_end_720p_{seconds}s_gpen_enhanced"] = bench_end_to_end(
            video, audio, weights, seconds, [*common, "--face_enhancement", "--enhancer_path",
                                             random_enhancer_weights(args.workdir, "gpen")])
    if args.clip_1080p and not args.no_sfd_1080p:
        video, audio = make_clip(args.workdir, args.clip_1080p, 1920, 1080)
        results[f"end_to_end_1080p_{args.clip_1080p}s_sfd_random_weights"] = bench_end_to_end(
            video, audio, weights, args.clip_1080p,
            ["--face_detector", "sfd", "--detector_path", random_detector_weights(args.workdir, "sfd"),
             "--no_det_cache", "--det_max_size", str(args.det_max_size)])
    report(json.dumps(results, indent=2))
    if args.json:
        with atomic_path(args.json) as partial, open(partial, "w") as out:
            json.dump(results, out, indent=2)
    failed = [name for name, row in results.items() if isinstance(row, dict) and "failed" in row]
    if failed:
        sys.stderr.write(f"{PROG}: error: run(s) failed: {', '.join(failed)} "
                         "(their reasons are in the results)\n")
    return 1 if failed else 0


if __name__ == "__main__":
    exit_with(main())
