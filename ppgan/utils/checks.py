"""What each numeric setting allows, in one place: the tools' flags (as argparse types, see
cli.py), the predictor's arguments and the training configs' keys all run these checks.

A check takes a value (a number, or the text of a flag or of a YAML string) and returns it
converted, or raises CheckError saying what is allowed: "must be an integer >= 1 (got 0)".
Light on purpose (no NumPy, no Paddle): the tools parse their flags before the slow imports.
"""
import math
import numbers
from typing import Any, Callable, Dict, Mapping, NoReturn, Optional, Sequence, Tuple, Union

from .errors import UserError

Check = Callable[[Any], Any]

# Detection copies smaller than this find no face: MTCNN's smallest face is 20 px, S3FD's
# smallest anchor 16 px, and a talking head fills about a third of the frame.
MIN_DETECTION_SIZE = 64
# The shipped networks take 96x96 faces, 16-step (0.2 s) mel windows and 5-frame windows only.
IMG_SIZE, MEL_STEP_SIZE, SYNCNET_T = 96, 16, 5
# The shortest synthetic clip: one mel window (5 frames at 25 fps).
MIN_CLIP_SECONDS = 0.2
# How a generated face is pasted back (ppgan/utils/blend.py): the mouth region, the whole face
# box feathered, or the references' hard box.
BLENDS = ("mouth", "face", "hard")
# The static generator's arithmetic (ppgan/utils/device.py resolve_precision): "auto" is bf16 on
# a CPU where it outruns fp32 (ppgan/utils/cpu.py) and fp32 elsewhere; int8 (CPU) only when asked
# for.
PRECISIONS = ("auto", "fp32", "bf16", "int8", "fp16")


def shown(value: Any) -> str:
    """A value as the user wrote it: flag text as given, sequences space-separated."""
    if isinstance(value, (list, tuple)):
        return " ".join(map(shown, value))
    return str(value)


class CheckError(UserError, ValueError):
    """A value its setting does not allow; the message says what is allowed and what was given."""

    def __init__(self, allowed: str, value: Any, name: str = ""):
        self.allowed, self.value, self.name = allowed, value, name
        prefix = f"{name}: " if name else ""
        super().__init__(f"{prefix}must be {allowed} (got {shown(value)})")

    def named(self, name: str) -> "CheckError":
        return CheckError(self.allowed, self.value, name)


def _refuse(allowed: str, value: Any) -> NoReturn:
    raise CheckError(allowed, value)


def _as_int(value: Any, allowed: str) -> int:
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            _refuse(allowed, value)
    if isinstance(value, bool):  # True is 1 to Python, never what a number setting meant
        _refuse(allowed, value)
    if isinstance(value, numbers.Integral):  # NumPy ints too
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():  # 2e8 in a YAML file
        return int(value)
    _refuse(allowed, value)


def _as_float(value: Any, allowed: str) -> float:
    number = math.nan
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    if not math.isfinite(number):  # NaN and inf pass every comparison test the wrong way
        _refuse(allowed, value)
    return number


# ------------------------------------------------------------------------------ factories
def integer(minimum: int, maximum: Optional[int] = None, allowed: Optional[str] = None) -> Check:
    """Integers from `minimum` (to `maximum`)."""
    allowed = allowed or (f"an integer >= {minimum}" if maximum is None
                          else f"an integer from {minimum} to {maximum}")

    def check(value: Any) -> int:
        number = _as_int(value, allowed)
        if number < minimum or (maximum is not None and number > maximum):
            _refuse(allowed, value)
        return number
    return check


def number(low: float, high: float = math.inf, open_low: bool = False,
           open_high: bool = False) -> Check:
    """Finite numbers between `low` and `high`, each bound included unless open."""
    if high == math.inf:
        allowed = f"a number {'>' if open_low else '>='} {low:g}"
    else:
        brackets = ("(" if open_low else "[") + (")" if open_high else "]")
        allowed = f"a number in {brackets[0]}{low:g}, {high:g}{brackets[1]}"

    def check(value: Any) -> float:
        x = _as_float(value, allowed)
        if x < low or x > high or (open_low and x == low) or (open_high and x == high):
            _refuse(allowed, value)
        return x
    return check


def exactly(expected: int, why: str) -> Check:
    allowed = f"{expected}, {why}"

    def check(value: Any) -> int:
        if _as_int(value, allowed) != expected:
            _refuse(allowed, value)
        return expected
    return check


def one_of(choices: Sequence[str]) -> Check:
    """One of `choices` (names the caller knows, such as the face detectors)."""
    allowed = f"one of {', '.join(choices)}"

    def check(value: Any) -> str:
        if value not in choices:
            _refuse(allowed, value)
        return value
    return check


def optional(check: Check) -> Check:
    """None (YAML's null: the code's default), or what `check` allows."""
    def checked(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except CheckError as err:
            raise CheckError(f"null or {err.allowed}", value) from None
    return checked


def comma_separated(check: Check, allowed: str) -> Check:
    """Text like "10,60" of values `check` allows (empty items skipped: "" is no values)."""
    def checked(text: str) -> list:
        try:
            return [check(item) for item in text.split(",") if item]
        except CheckError:
            raise CheckError(allowed, text) from None
    return checked


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):  # bool("false") is True: a typo must not flip a setting
        _refuse("true or false", value)
    return value


# ----------------------------------------------------------------------------- the rules
positive_int = integer(1)
non_negative_int = integer(0)
positive_number = number(0, open_low=True)
non_negative_number = number(0)
fraction = number(0, 1, open_high=True)  # a share that leaves something for the rest
weight = number(0, 1)  # a loss weight
seed = integer(0, 2**64 - 1, allowed="an integer from 0 to 2**64 - 1")  # what paddle.seed takes
clip_seconds = number(MIN_CLIP_SECONDS)


def detection_size(value: Any) -> int:
    """--det_max_size: 0 (detect at full resolution) or a longest side worth detecting on."""
    allowed = f"0 (full resolution) or an integer >= {MIN_DETECTION_SIZE}"
    size = _as_int(value, allowed)
    if size != 0 and size < MIN_DETECTION_SIZE:
        _refuse(allowed, value)
    return size


def _four_ints(value: Any, allowed: str) -> Tuple[int, int, int, int]:
    """Four integers from a list, a tuple or a NumPy array; the error shows all of `value`."""
    if isinstance(value, str):
        _refuse(allowed, value)
    try:
        values = tuple(_as_int(v, allowed) for v in value)
    except (TypeError, CheckError):
        _refuse(allowed, value)
    if len(values) != 4:
        _refuse(allowed, value)
    return values


def pads(value: Any) -> Tuple[int, int, int, int]:
    """--pads top bottom left right: any integers; negative ones shrink the box (as in the
    references), and a box they leave empty is refused once the face is found."""
    return _four_ints(value, "four integers (top bottom left right)")


def crop(value: Any) -> Tuple[int, int, int, int]:
    """--crop top bottom left right; the frame's own size is checked when it is known."""
    allowed = ("top bottom left right with top and left >= 0, bottom and right -1 (the "
               "frame's edge) or greater than top and left")
    top, bottom, left, right = _four_ints(value, allowed)
    if top < 0 or left < 0 or (bottom != -1 and bottom <= top) or (right != -1 and right <= left):
        _refuse(allowed, value)
    return top, bottom, left, right


def box(value: Any) -> Tuple[int, int, int, int]:
    """--box top bottom left right, or all -1 for none; the frame's own size is checked later."""
    allowed = ("-1 -1 -1 -1 (off) or top bottom left right with 0 <= top < bottom and "
               "0 <= left < right")
    top, bottom, left, right = _four_ints(value, allowed)
    off = (top, bottom, left, right) == (-1, -1, -1, -1)
    if not off and not (0 <= top < bottom and 0 <= left < right):
        _refuse(allowed, value)
    return top, bottom, left, right


FACE_SELECT_ALLOWED = ("largest, a face's index from the left (an integer >= 0), or a point "
                       "X,Y on it (pixels >= 0)")


def face_select(value: Any) -> Union[None, str, int, Tuple[float, float]]:
    """--face_select: "largest", an index from the left (int), or a point (x, y) of the input
    frame (None: not given); the frame's own size is checked when it is known."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text == "largest":
            return text
        if "," not in text:
            return _as_index(text, value)
        parts = text.split(",")
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        return _as_index(value, value)
    if len(parts) != 2:
        _refuse(FACE_SELECT_ALLOWED, value)
    try:
        x, y = (number(0)(part) for part in parts)
    except CheckError:
        _refuse(FACE_SELECT_ALLOWED, value)
    return x, y


def _as_index(value: Any, shown_value: Any) -> int:
    try:
        return non_negative_int(value)
    except CheckError:
        _refuse(FACE_SELECT_ALLOWED, shown_value)


def split_fractions(val_fraction: Any, test_fraction: Any) -> Tuple[float, float]:
    """The val and test shares of a train/val/test split: each in [0, 1), and train keeps some."""
    val, test = fraction(val_fraction), fraction(test_fraction)
    if val + test >= 1:
        _refuse("below 1 together, so that train keeps some clips",
                f"{shown(val_fraction)} + {shown(test_fraction)}")
    return val, test


# A photo's frame rate: above this, a typo (1e9) would mean hours of frames per second of audio.
MAX_FPS = 1000
photo_fps = number(0, MAX_FPS, open_low=True)

# The numeric arguments of Wav2LipPredictor, which are also flags of applications/tools/wav2lip.py.
PREDICTOR_ARGS: Dict[str, Check] = {
    "fps": photo_fps, "pads": pads, "face_det_batch_size": positive_int,
    "wav2lip_batch_size": positive_int, "resize_factor": positive_int, "crop": crop, "box": box,
    "det_max_size": detection_size, "det_every": positive_int, "cpu_threads": non_negative_int,
    "blend": one_of(BLENDS),
    # dB under the clip's speech level; past 100 dB every frame of 16-bit audio is "speech".
    "silence_threshold": number(0, 100, open_low=True),
    "silence_min_span": positive_number,  # seconds
    "face_select": face_select,
}


def check_named(rules: Mapping[str, Check], values: Mapping[str, Any]) -> Dict[str, Any]:
    """The `values` that have a rule, checked and converted; the CheckError names the value."""
    checked = {}
    for name, check in rules.items():
        try:
            checked[name] = check(values[name])
        except CheckError as err:
            raise err.named(name) from None
    return checked


# Training config keys (tools/main.py); `*` stands for any section (dataset.train, dataset.test).
# Keys a config leaves out keep the code's defaults, which are valid.
CONFIG_RULES: Dict[str, Check] = {
    "total_iters": positive_int,
    "model.syncnet_wt": weight,
    "model.syncnet_wt_switch": weight,
    "model.disc_wt": weight,
    "model.sync_threshold": non_negative_number,  # 0: never switch to the sync loss
    "model.max_eval_steps": optional(positive_int),
    "model.syncnet_T": exactly(SYNCNET_T, "the frames the lip-sync expert takes"),
    "model.expert_bn_train_mode": boolean,
    "dataset.*.batch_size": positive_int,
    "dataset.*.num_workers": non_negative_int,
    "dataset.*.use_shared_memory": boolean,
    "dataset.*.img_size": exactly(IMG_SIZE, "the face size the networks take"),
    "dataset.*.mel_step_size": exactly(MEL_STEP_SIZE, "the mel window the networks take"),
    "dataset.*.syncnet_T": exactly(SYNCNET_T, "the frames the lip-sync expert takes"),
    "dataset.*.fps": positive_number,
    "dataset.*.seed": optional(seed),
    "dataset.*.samples_per_epoch": optional(positive_int),
    "dataset.*.mel_cache_size": positive_int,
    "optimizer.*.beta1": fraction,
    "optimizer.*.beta2": fraction,
    "optimizer.*.epsilon": positive_number,
    "optimizer.*.weight_decay": non_negative_number,
    "lr_scheduler.learning_rate": positive_number,
    "lr_scheduler.start_epoch": non_negative_int,
    "lr_scheduler.decay_epochs": non_negative_int,
    "lr_scheduler.iters_per_epoch": positive_int,
    "lr_scheduler.gamma": positive_number,
    "validate.interval": optional(non_negative_int),  # null or 0: never
    "validate.save_img": boolean,
    "log_config.interval": positive_int,
    "log_config.visual_interval": optional(non_negative_int),  # null or 0: never
    "log_config.visiual_interval": optional(non_negative_int),  # PaddleGAN's spelling
    "snapshot_config.interval": optional(non_negative_int),  # null or 0: only at the end
    "enable_visualdl": boolean,
    "find_unused_parameters": boolean,
}


def check_l1_weight(model: Mapping[str, Any]) -> None:
    """The HQ model's L1 weight, 1 - syncnet_wt - disc_wt, must not turn negative, before or
    after syncnet_wt switches."""
    disc_wt = model.get("disc_wt")
    for key in ("syncnet_wt", "syncnet_wt_switch"):
        if disc_wt is not None and model.get(key) is not None and model[key] + disc_wt > 1:
            raise CheckError(f"at most 1 - model.{key} = {1 - model[key]:g}, so that the L1 "
                             "loss weight stays >= 0", disc_wt, "model.disc_wt")
