"""The `ppgan` logger in PaddleGAN's format: `[time] ppgan INFO: message`.

Rank 0 logs to stdout and to `<output_dir>/log.txt`. Other ranks of a distributed run write no
files (rank 0 speaks for the run); they log warnings and errors to stderr, which
`paddle.distributed.launch` keeps in `log/workerlog.N`.
"""
import contextlib
import logging
import os
import sys
import threading
from typing import Dict, Iterator, Optional, Tuple

LOGGER_NAME = "ppgan"
FORMAT = "[%(asctime)s] ppgan %(levelname)s: %(message)s"
DATE_FORMAT = "%Y/%m/%d %H:%M:%S"


# fd -> (blocks open, a copy of what the fd was before the first): the descriptors are the
# process's, so blocks on several threads share one redirection.
_silenced: Dict[int, Tuple[int, int]] = {}
_silenced_lock = threading.Lock()


@contextlib.contextmanager
def native_output_silenced(fd: int = 2) -> Iterator[None]:
    """Send what C libraries write to file descriptor `fd` (2: stderr, 1: stdout) to /dev/null
    for the block. Blocks may overlap on several threads: the first to open redirects and the
    last to close restores (each restoring what it found, the second would otherwise leave the
    descriptor on /dev/null for good, as when an int8 export and a program's opening overlapped)."""
    with _silenced_lock:
        depth, saved = _silenced.get(fd, (0, -1))
        if depth == 0:
            (sys.stdout if fd == 1 else sys.stderr).flush()
            saved = os.dup(fd)
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), fd)
        _silenced[fd] = (depth + 1, saved)
    try:
        yield
    finally:
        with _silenced_lock:
            depth, saved = _silenced.pop(fd)
            if depth > 1:
                _silenced[fd] = (depth - 1, saved)
            else:
                os.dup2(saved, fd)
                os.close(saved)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def _reset_handlers(logger: logging.Logger) -> None:
    """A second setup in one process (tests, notebooks) replaces the handlers of the first."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def setup_logger(output_dir: Optional[str] = None, rank: int = 0) -> logging.Logger:
    """Configure and return the `ppgan` logger; every `ppgan.*` module logger goes through it."""
    logger = get_logger()
    _reset_handlers(logger)
    logger.setLevel(logging.INFO)
    # Our handlers only: the root logger's (if an application set one) would print lines twice.
    logger.propagate = False
    formatter = logging.Formatter(FORMAT, datefmt=DATE_FORMAT)
    if rank == 0:
        console = logging.StreamHandler(stream=sys.stdout)
        console.setFormatter(formatter)
        logger.addHandler(console)
        if output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)
            log_file = logging.FileHandler(os.path.join(output_dir, "log.txt"), encoding="utf-8")
            log_file.setFormatter(formatter)
            logger.addHandler(log_file)
    else:
        errors = logging.StreamHandler(stream=sys.stderr)
        errors.setLevel(logging.WARNING)
        errors.setFormatter(logging.Formatter(f"[rank {rank}] " + FORMAT, datefmt=DATE_FORMAT))
        logger.addHandler(errors)
    return logger
