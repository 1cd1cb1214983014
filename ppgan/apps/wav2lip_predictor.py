"""Wav2LipPredictor: a face video or photo plus speech in, a lip-synced video out.

The pipeline streams: a first pass reads the frames once to find a face box per frame (boxes, and
where the detector marks it each box's mouth, are all it keeps), a second pass reads them again
in batches, generates the mouths, pastes them back and pipes the frames to ffmpeg. Memory does
not grow with the video's length.
"""
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..faceutils.detectors import DETECTORS
from ..models.generators.wav2lip import FACE_SIZE, LOWER_FIRST_ROW, MEL_STEP_SIZE, frame_faces
from ..utils.audio import DEFAULT_MEL, AudioError, load_wav, mel_window, melspectrogram
from ..utils.blend import cross_fade, first_face_row, paste_face
from ..utils.boxes import XYXYBox
from ..utils.checks import PRECISIONS, PREDICTOR_ARGS, CheckError, check_named, one_of, shown
from ..utils.device import default_device
from ..utils.download import resolve_weights
from ..utils.progress import ProgressHook, ReportedBar
from ..utils.read_ahead import read_ahead
from ..utils.silence import passthrough_shares
from ..utils.stopping import block_stop_signals, submit_unsplit
from ..utils.video import FrameSource, InputError, VideoWriter, check_output_path
from ..faceutils.face_enhancement import ENHANCERS, Enhancer
from .face_enhancer import PLACEMENTS, enhance_frames, enhance_generated, load_enhancer
from .generator_runner import CPU_CHUNK, GeneratorRunner, generator_opener
from .video_faces import DetectionMemory, DetectionOptions, face_boxes_and_mouths

logger = logging.getLogger(__name__)

WAV2LIP_URL = "https://paddlegan.bj.bcebos.com/models/wav2lip_hq.pdparams"
STEP_BYTES = 256 << 20  # 10 frames of 4K, 43 of 1080p
# The arguments that choose the networks a predictor loads (a job list keeps them for all jobs).
NETWORK_ARGUMENTS = ("checkpoint_path", "engine", "cpu", "cpu_threads", "precision", "fp16",
                     "face_detector", "detector_path", "face_enhancement", "enhancer",
                     "enhancer_path")
# Those that choose the generator and how every network runs: `with_options` keeps them. The
# detectors and enhancers are kept by name and weights, so siblings may choose others.
GENERATOR_ARGUMENTS = ("checkpoint_path", "engine", "cpu", "cpu_threads", "precision", "fp16")


def pingpong_index(i: int, count: int) -> int:
    """Output frame i's source frame when the video plays forward, then backward, and so on."""
    if count == 1:
        return 0
    period = 2 * count - 2
    r = i % period
    return r if r < count else period - r


def _runs(indices: Sequence[int]) -> Iterator[List[int]]:
    """Split source indices into runs of consecutive frames (ascending or descending)."""
    run = [indices[0]]
    for index in indices[1:]:
        step = index - run[-1]
        if abs(step) == 1 and (len(run) == 1 or step == run[-1] - run[-2]):
            run.append(index)
        else:
            yield run
            run = [index]
    yield run


def checked_mel(mel: np.ndarray, audio_name: str) -> np.ndarray:
    if np.isnan(mel).any():
        raise AudioError(f"the mel-spectrogram of {audio_name} contains NaN (a TTS voice? "
                         "add a little noise to the audio)")
    return mel


def padded_to_one_window(mel: np.ndarray) -> np.ndarray:
    """A whole clip's mel, padded with silence to one window if under 0.2 s."""
    if mel.shape[1] >= MEL_STEP_SIZE:
        return mel
    return np.pad(mel, ((0, 0), (0, MEL_STEP_SIZE - mel.shape[1])),
                  constant_values=-DEFAULT_MEL.max_abs_value)


def output_frames(samples: int, fps: float) -> int:
    """As many frames as the audio lasts (the references stop up to 0.2 s short)."""
    return max(1, round(samples / DEFAULT_MEL.sample_rate * fps))


def _clip_mel(wav: np.ndarray, audio_path: str) -> np.ndarray:
    """The whole clip's mel, checked and padded to at least one window."""
    return padded_to_one_window(checked_mel(melspectrogram(wav), audio_path))


def _blend_mode(blend: Optional[str], feather: bool) -> str:
    """`blend`, or from the older `feather` switch: False is the hard paste."""
    if feather:
        return blend or "mouth"
    if blend not in (None, "hard"):
        raise InputError(f"feather=False is blend='hard'; it contradicts blend='{blend}'")
    return "hard"


def _failing_with(pending: Future, hook: Optional[ProgressHook]) -> ProgressHook:
    """`hook` (or none), that raises `pending`'s exception once it has failed: work beside it
    then stops at its next step, not at its end."""
    def told(stage: str, done: int, total: int) -> None:
        if pending.done() and pending.exception() is not None:
            raise pending.exception()
        if hook is not None:
            hook(stage, done, total)
    return told


def _face_choice(face_select, reference_detection: bool, box: Optional[XYXYBox]):
    """The person to follow ("largest" unless chosen), or None (reference_detection: each
    frame's top-ranked face); a choice that a setting makes meaningless is refused."""
    if face_select is not None and (reference_detection or box is not None):
        other = "reference_detection (each frame's top-ranked face, as the references)" \
            if reference_detection else "box (one fixed box, no detection)"
        raise InputError(f"face_select {shown(face_select)} contradicts {other}: give one of them")
    if reference_detection:
        return None
    return "largest" if face_select is None else face_select


def _precision(precision: str, fp16: bool) -> str:
    """`precision` (checked with the other arguments), with `fp16` its old spelling of "fp16"."""
    if fp16 and precision not in ("auto", "fp16"):
        raise InputError(f"fp16 contradicts precision '{precision}'")
    return "fp16" if fp16 else precision


def _without_int8(precision: str) -> str:
    """The enhancers' precision for the generator's: they have no int8 export (the generator
    and S3FD have: `ppgan.apps.generator_int8`, `sfd_int8`)."""
    return "fp32" if precision == "int8" else precision


def _checked_arguments(arguments: dict) -> dict:
    """The predictor's numeric arguments, checked as the command line checks its flags, and
    its face detector's name."""
    try:
        return check_named({**PREDICTOR_ARGS, "face_detector": one_of(list(DETECTORS)),
                            "precision": one_of(PRECISIONS)}, arguments)
    except CheckError as err:
        raise InputError(str(err)) from None


@dataclass
class _Kept:
    """What a predictor keeps between runs, shared with its `with_options` siblings: the networks
    once loaded and the face detections made."""
    generator: Optional[GeneratorRunner] = None
    # By name and weights path: siblings may choose other enhancers.
    enhancers: Dict[Tuple[str, Optional[str]], Enhancer] = field(default_factory=dict)
    detection: DetectionMemory = field(default_factory=DetectionMemory)


def generate(generator: GeneratorRunner, mels: np.ndarray, faces: Optional[np.ndarray],
             still_skips: Optional[List[np.ndarray]], lower_only: bool = False) -> np.ndarray:
    """One step's generated faces (B,3,96,96) for its mel windows (B,80,16), from its face input
    or, for a still, the face features encoded once; `lower_only`: drawn only from
    LOWER_FIRST_ROW on, the rows above left 0."""
    skips = (generator.encode_face(faces) if still_skips is None
             else [np.repeat(s, len(mels), axis=0) for s in still_skips])
    mels = mels[:, None].astype(np.float32)
    if not lower_only:
        return generator.decode(mels, skips)
    lower = generator.decode_lower(mels, skips)
    generated = np.zeros(lower.shape[:2] + (FACE_SIZE, FACE_SIZE), np.float32)
    generated[:, :, LOWER_FIRST_ROW:] = lower
    return generated


class Wav2LipPredictor:
    """PaddleGAN's predictor, with the same arguments, plus what users of the original ask for.

    Extra arguments: `strict_face` (any frame without a face is an error, as in the
    references, whatever the other detection settings; by default such frames take the nearest
    detected box), `blend` ("mouth", the default: blend in only the lower half of the face
    box, which the generator redraws; "face": the whole box, feathered; "hard": the references'
    hard paste), `feather` (False: the same as blend="hard"), `color_match` (shift the
    generated face's colours to the frame's where the blend's soft rim shows both; feathered
    blends only), `silence_passthrough` (on silent
    spans of the audio show the source frames, cross-faded at the edges; a span is silent where
    each frame's audio is `silence_threshold` dB or more under the clip's speech level for at
    least `silence_min_span` seconds),
    `det_max_size` (detect on a copy whose longest side is at most this; 0: full resolution, as
    the references), `det_every` (detect every k-th frame and interpolate between, re-detecting
    where the face moved; 1: every frame), `det_cache` (reuse the detections of an earlier run
    on the same video and settings), `face_select` (the person to lip-sync where a video shows
    several: "largest", the default, the largest face where one first appears; an index from
    the left, 0 first, on the first frame showing that many faces; or a point (x, y), also
    "X,Y", in pixels of the input as decoded, on the face to take; that person is then
    followed from frame to frame, see `ppgan.faceutils.face_track`), `reference_detection`
    (detect as the references: every frame at full resolution, no cache, PaddleGAN's BlazeFace
    crop and face order, and each frame's top-ranked face; it overrides the three `det_*`
    settings and cannot be combined with `face_select`), `engine` ("static": Paddle Inference,
    "eager": dygraph), `detector_path` (local detector weights), `cpu_threads`, `precision` (the static
    generator's, and S3FD's on a CPU: "auto", bf16 on a CPU where it outruns fp32 (AMX, or
    AVX-512 BF16 on AMD) and fp32 elsewhere; "fp32"; "bf16" on a CPU; "int8" on a CPU, the
    generator and S3FD, quantised on first use (`ppgan.apps.generator_int8`, `sfd_int8`; the enhancers run in fp32); "fp16" on a GPU; see
    `ppgan.utils.device.resolve_precision`), `fp16` (the same as precision="fp16"), `enhancer` ("gpen", PaddleGAN's, "gfpgan" or "gfpgan_clean":
    the network `face_enhancement` runs), `enhancer_path` (its weights; default: download
    PaddleGAN's; gfpgan_clean has none),
    `enhance_at` ("frame": the face crop of the frame after the paste; "generated": the 96-px
    generated face before it, as PaddleGAN; see `ppgan.apps.face_enhancer`).

    The numeric arguments, `face_detector` and `precision` are checked on construction as the
    command line checks its flags (`ppgan.utils.checks.PREDICTOR_ARGS`, `ppgan.faceutils.detectors`): a
    value they do not allow is an InputError naming it.

    A predictor loads its networks on first use and keeps them for later runs, with the face
    boxes it found: a later run on the same video and detection settings reuses them, in memory,
    whatever `det_cache` says (which is about the disk). `with_options` makes a predictor with
    other settings that shares both.
    """

    def __init__(self, checkpoint_path: Optional[str] = None, static: bool = False, fps: float = 25.0,
                 pads: Sequence[int] = (0, 10, 0, 0), face_det_batch_size: int = 16,
                 wav2lip_batch_size: int = 128, resize_factor: int = 1,
                 crop: Sequence[int] = (0, -1, 0, -1), box: Sequence[int] = (-1, -1, -1, -1),
                 rotate: bool = False, nosmooth: bool = False, face_detector: str = "sfd",
                 face_enhancement: bool = False, strict_face: bool = False, feather: bool = True,
                 det_max_size: int = 360, det_every: int = 5, det_cache: bool = True,
                 reference_detection: bool = False, engine: str = "static", cpu: bool = False,
                 detector_path: Optional[str] = None, cpu_threads: int = 0, fp16: bool = False,
                 precision: str = "auto", enhancer: str = "gpen",
                 enhancer_path: Optional[str] = None, enhance_at: str = "frame", blend: Optional[str] = None,
                 silence_passthrough: bool = False, silence_threshold: float = 30.0,
                 silence_min_span: float = 0.4, color_match: bool = False,
                 face_select: Union[None, str, int, Sequence[float]] = None):
        self._arguments = {name: value for name, value in locals().items() if name != "self"}
        checked = _checked_arguments({**locals(), "blend": _blend_mode(blend, feather)})
        if color_match and checked["blend"] == "hard":
            raise InputError("color_match needs a feathered blend (mouth or face), not 'hard'")
        for name, value, allowed in (("enhancer", enhancer, ENHANCERS),
                                     ("enhance_at", enhance_at, PLACEMENTS)):
            if value not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, not '{value}'")
        self.enhancement = (enhancer, enhancer_path, enhance_at) if face_enhancement else None
        self.precision = _precision(checked["precision"], fp16)
        self.checkpoint_path = checkpoint_path
        self.static = static
        self.fps = checked["fps"]
        self.batch_size = checked["wav2lip_batch_size"]
        self.transform = dict(resize_factor=checked["resize_factor"], crop=checked["crop"],
                              rotate=rotate)
        box = (None if checked["box"][0] == -1
               else XYXYBox.from_top_bottom_left_right(*checked["box"]))
        self.detection = DetectionOptions(
            detector=face_detector, detector_path=detector_path,
            batch_size=checked["face_det_batch_size"], pads=checked["pads"], box=box,
            smooth=not nosmooth, strict=strict_face,
            max_size=0 if reference_detection else checked["det_max_size"],
            every=1 if reference_detection else checked["det_every"],
            cache=det_cache and not reference_detection, reference=reference_detection,
            face_select=_face_choice(checked["face_select"], reference_detection, box),
            # S3FD in fp16 is not measured (no GPU here): it stays fp32 there.
            precision=("fp32" if reference_detection or self.precision == "fp16"
                       else self.precision))
        self.blend = checked["blend"]
        self.color_match = color_match
        self.silence = (dict(below_speech_db=checked["silence_threshold"],
                             min_seconds=checked["silence_min_span"])
                        if silence_passthrough else None)
        self.engine = engine
        self.device = default_device(cpu)
        self.cpu_threads = checked["cpu_threads"]
        self._kept = _Kept()

    def with_options(self, **changes: Any) -> "Wav2LipPredictor":
        """A predictor whose runs take other settings (`pads`, `static`, `box`, `blend`, the
        face detector, the enhancer...) and share this one's loaded networks and detections, so
        many clips load the weights once. The `GENERATOR_ARGUMENTS` cannot change: they choose
        the generator."""
        fixed = [name for name in GENERATOR_ARGUMENTS
                 if name in changes and changes[name] != self._arguments[name]]
        if fixed:
            raise ValueError(f"with_options cannot change {', '.join(fixed)}: they choose the "
                             "loaded networks (make another Wav2LipPredictor)")
        sibling = Wav2LipPredictor(**{**self._arguments, **changes})
        sibling._kept = self._kept
        return sibling

    # ---- generation ---------------------------------------------------------------------
    def generator(self) -> GeneratorRunner:
        """The generator these settings run: loaded (or downloaded) on the first call and kept,
        so a predictor that runs many clips loads it once, with the decoder they need."""
        return self._generator_opener()()

    def _generator_opener(self) -> Callable[[], GeneratorRunner]:
        """`generator` in two parts, as `generator_opener`: this call downloads the weights
        and does what runs Paddle from Python; the function returned opens the programs."""
        open_generator = None
        if self._kept.generator is None:
            weights = resolve_weights(self.checkpoint_path, WAV2LIP_URL)
            open_generator = generator_opener(weights, self.engine, self.device,
                                              self.cpu_threads, self.precision)

        def opened() -> GeneratorRunner:
            if self._kept.generator is None:
                self._kept.generator = open_generator()
            self._kept.generator.prepare(self.lower_only())
            return self._kept.generator
        return opened

    def load_networks(self) -> GeneratorRunner:
        """The generator, and the enhancer if enabled, loaded on the first call (`generator`,
        `enhancer`)."""
        return self._networks_opener()()

    def _networks_opener(self) -> Callable[[], GeneratorRunner]:
        """`load_networks` in two parts. This call does all that runs Paddle from Python (the
        downloads, the enhancer, the generator's export on first use); the function returned
        opens the generator's Paddle Inference programs, which may run on another thread
        beside Python-level Paddle work, such as a detector's (see `generator_opener`)."""
        self.enhancer()
        return self._generator_opener()

    def enhancer(self) -> Optional[Enhancer]:
        """The face enhancer, loaded (or downloaded) on the first call; None without
        face_enhancement."""
        if self.enhancement is None:
            return None
        name, path, _ = self.enhancement
        if (name, path) not in self._kept.enhancers:
            self._kept.enhancers[name, path] = load_enhancer(
                name, path, self.engine, self.device, self.cpu_threads,
                _without_int8(self.precision))
        return self._kept.enhancers[name, path]

    def lower_only(self) -> bool:
        """Whether the paste reads only the generated faces' rows from LOWER_FIRST_ROW on (the
        "mouth" blend, unless the enhancer restores the whole generated face first), so the
        generator need draw no others."""
        enhances_generated = self.enhancement is not None and self.enhancement[2] == "generated"
        return (not enhances_generated
                and first_face_row(self.blend, FACE_SIZE) >= LOWER_FIRST_ROW)

    def step_size(self, frame_bytes: int) -> int:
        """Frames per generator call. Three steps are in flight (read, generated, written), so
        the frames held stay under 3 x STEP_BYTES whatever the resolution; on a CPU the
        generator is also fastest on small batches."""
        step = min(self.batch_size, max(1, STEP_BYTES // frame_bytes))
        return min(step, CPU_CHUNK) if self.device == "cpu" else step

    def paste_and_write(self, writer: VideoWriter, frames: List[np.ndarray], generated: np.ndarray,
                         boxes: np.ndarray, shared_frames: bool, source_shares: np.ndarray,
                         mouths: Optional[np.ndarray] = None) -> None:
        """Paste the generated faces into their frames and write them; `shared_frames`: the
        frames are one still, copied before each paste; `source_shares`: how much of the
        source frame each output frame shows instead (silence); `mouths`: per frame its mouth
        in its box (see `SourceFrames.mouths`)."""
        faces = (generated.transpose(0, 2, 3, 1) * 255.0).astype(np.uint8)
        enhancer = self.enhancer()
        at = self.enhancement[2] if enhancer is not None else None
        if enhancer is not None and at == "generated":
            faces = enhance_generated(enhancer, faces)
        pasted_frames: List[Optional[np.ndarray]] = []
        for k, (frame, face, box, share) in enumerate(zip(frames, faces, boxes, source_shares)):
            if share >= 1:  # silence: the source frame alone
                pasted_frames.append(None)
                continue
            pasted = frame.copy() if shared_frames or share > 0 else frame
            mouth = None if mouths is None or np.isnan(mouths[k]).any() else tuple(mouths[k])
            paste_face(pasted, face, XYXYBox(*map(int, box)), blend=self.blend,
                       color_match=self.color_match, mouth=mouth)
            pasted_frames.append(pasted)
        if enhancer is not None and at == "frame":
            used = [index for index, pasted in enumerate(pasted_frames) if pasted is not None]
            if used:
                enhance_frames(enhancer, [pasted_frames[index] for index in used],
                               np.asarray(boxes)[used])
        for frame, pasted, share in zip(frames, pasted_frames, source_shares):
            if pasted is None:
                writer.write(frame)
            else:
                writer.write(cross_fade(pasted, frame, share) if share > 0 else pasted)

    # ---- the pipeline -------------------------------------------------------------------
    def run(self, face: str, audio_seq: str, outfile: str,
            progress: Optional[ProgressHook] = None) -> str:
        """Write `outfile`: `face` (video or photo) lip-synced to `audio_seq`; returns its path.
        `progress` is told the stages' progress as the tqdm bars show it: ("face detection",
        frames done, frames to detect), then ("lip sync", frames written, output frames)."""
        outfile = check_output_path(outfile)
        for name, path in (("face", face), ("audio", audio_seq)):
            if os.path.exists(path) and os.path.exists(outfile) and os.path.samefile(path, outfile):
                raise InputError(f"the output would overwrite the {name} input: {outfile}")
        source = FrameSource(face, self.fps, **self.transform)
        try:
            return self._run(source, audio_seq, outfile, progress)
        finally:
            source.close()

    def _run(self, source: FrameSource, audio_path: str, outfile: str,
             progress: Optional[ProgressHook]) -> str:
        wav = load_wav(audio_path)
        # Paddle's eager and tracing state is process-wide, so what runs Paddle from Python (an
        # export on a network's first use, the enhancer, the mel's STFT) is done first: an int8
        # calibration on one thread failed beside S3FD's first export on another. Missing
        # default weights are downloaded then too, their bars before the detection's.
        open_networks = self._networks_opener()
        mel = _clip_mel(wav, audio_path)
        total = output_frames(wav.size, source.fps)
        shares = self._source_shares(wav, source.fps, total)
        # While the faces are found, the generator's programs open: Paddle Inference prepares
        # them in C++ with the GIL released; one that fails to open stops the detection at its
        # next frame.
        with ThreadPoolExecutor(1, "wav2lip-prepare", block_stop_signals) as pool:
            networks = submit_unsplit(pool, open_networks)
            frames = self.frames_to_sync(source, total, _failing_with(networks, progress))
            generator = networks.result()
        logger.info("%d output frames at %.2f fps from %d source frame(s)", total, source.fps,
                    len(frames.boxes))
        with VideoWriter(outfile, source.width, source.height, source.fps, audio_path) as writer:
            self._lip_sync(generator, frames, mel, shares, writer, progress)
        return outfile

    def frames_to_sync(self, source: FrameSource, count: int,
                       progress: Optional[ProgressHook] = None) -> "SourceFrames":
        """The source's frames for `count` output frames and their face boxes: a photo's or
        --static's one still, or the video's first `count` frames (all of them if it is
        shorter), found once before the first frame is generated."""
        is_still = source.is_image or self.static
        boxes, mouths = face_boxes_and_mouths(source, 1 if is_still else count, self.detection,
                                              self.device, self.transform, self._kept.detection,
                                              progress)
        return SourceFrames(source, source.read_frame(0) if is_still else None, boxes, mouths)

    def _source_shares(self, wav: np.ndarray, fps: float, total: int) -> np.ndarray:
        """Per output frame, the share of the source frame it shows (0 without
        silence_passthrough)."""
        if self.silence is None:
            return np.zeros(total, np.float32)
        shares = passthrough_shares(wav, DEFAULT_MEL.sample_rate, fps, total, **self.silence)
        logger.info("silence: %d of %d frames show the source frame (fully or fading)",
                    np.count_nonzero(shares), total)
        return shares

    def _lip_sync(self, generator: GeneratorRunner, frames: "SourceFrames", mel: np.ndarray,
                  source_shares: np.ndarray, writer: VideoWriter,
                  hook: Optional[ProgressHook]) -> None:
        """Generate, paste and write one frame per entry of `source_shares`, in steps of a few
        frames; the bar (and `hook`) count the frames written."""
        total = source_shares.size
        source, still = frames.source, frames.still
        # A still's face features are the same for every frame: encode them once.
        still_skips = frames.still_features(generator)
        step = self.step_size(source.height * source.width * 3)
        steps = [range(s, min(s + step, total)) for s in range(0, total, step)]
        # Reading (decode, crop, resize) runs one step ahead on a thread, pasting and piping to
        # ffmpeg one step behind on another: cv2, NumPy and pipes release the GIL (Paddle
        # Inference's run does not: beside the generator they move only inside such calls).
        # Leaving the block waits for both, so the source and the writer outlive their work.
        reads = (frames.read_step(frames_out) for frames_out in steps)
        with ReportedBar(hook=hook, total=total, desc="lip sync", unit="frame",
                         leave=None) as progress, \
                read_ahead(reads, 1, "wav2lip-read") as read, \
                ThreadPoolExecutor(1, "wav2lip-write", block_stop_signals) as paster:
            last_write = None
            for frames_out, (indices, images, faces) in zip(steps, read):
                mels = np.stack([mel_window(mel, i, source.fps) for i in frames_out])
                generated = generate(generator, mels, faces, still_skips, self.lower_only())
                if last_write is not None:
                    last_write.result()
                    progress.update(step)
                last_write = submit_unsplit(paster, self.paste_and_write, writer, images,
                                            generated, frames.boxes[indices], still is not None,
                                            source_shares[frames_out.start:frames_out.stop],
                                            frames.mouths_at(indices))
            last_write.result()
            progress.update(len(steps[-1]))


@dataclass(frozen=True)
class SourceFrames:
    """One run's frames to lip-sync and their face boxes: a video's, or one still's."""
    source: FrameSource
    still: Optional[np.ndarray]  # the one frame of a photo or --static run; None: the video's
    boxes: np.ndarray  # per source frame, XYXYBox's columns
    # Per source frame its mouth as shares of its box (`face_boxes_and_mouths`; NaN rows where
    # unknown); None: no mouths (a fixed box, or a detector without landmarks).
    mouths: Optional[np.ndarray] = None

    def mouths_at(self, indices: Sequence[int]) -> Optional[np.ndarray]:
        return None if self.mouths is None else self.mouths[indices]

    def still_features(self, generator: GeneratorRunner) -> Optional[List[np.ndarray]]:
        """A still's face features, the same for every frame, encoded once; None for a video."""
        if self.still is None:
            return None
        return generator.encode_face(frame_faces([self.still], self.boxes[:1]))

    def read(self, indices: Sequence[int]) -> List[np.ndarray]:
        """The source frames at `indices`, read in runs of consecutive frames."""
        if self.still is not None:
            return [self.still] * len(indices)
        frames: List[np.ndarray] = []
        for run in _runs(list(indices)):
            lo, hi = min(run), max(run)
            chunk = list(self.source.frames(lo, hi + 1))
            if len(chunk) != hi - lo + 1:
                raise InputError(f"{self.source.path} ended early while reading frames {lo}..{hi}")
            frames.extend(chunk if run[0] == lo else chunk[::-1])
        return frames

    def read_step(self, frames_out: range):
        """(source indices, frames, face input) of output frames `frames_out`; the face input
        is None for a still, whose features are encoded once."""
        indices = [pingpong_index(i, len(self.boxes)) for i in frames_out]
        frames = self.read(indices)
        faces = None if self.still is not None else frame_faces(frames, self.boxes[indices])
        return indices, frames, faces
