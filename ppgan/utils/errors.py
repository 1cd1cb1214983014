"""The errors that mean "the user's input is wrong": command-line tools print them on one line."""
from ..faceutils.face_boxes import NoFaceError
from .audio import AudioError
from .download import DownloadError
from .ffmpeg_tools import FFmpegError
from .video import InputError
from .weights import WeightsError

USER_ERRORS = (AudioError, DownloadError, FFmpegError, InputError, NoFaceError, WeightsError,
               FileNotFoundError)
