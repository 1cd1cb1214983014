"""What every command-line tool shares: one-line errors, checked numeric flags, the same
logging, and the same endings (user errors, a full disk, Ctrl-C, SIGTERM, SIGHUP)."""
import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Any, Callable, Iterator, Mapping, NoReturn, Tuple, Type

from . import checks
from .atomic import DISK_FULL_ERRNOS, discard_unfinished
from .checks import Check, CheckError

LOG_FORMAT = "[%(asctime)s] %(name)s %(levelname)s: %(message)s"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
               errno.ENAMETOOLONG, errno.ELOOP)


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; a user mistake gets a single line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def arg_type(check: Check) -> Callable[[str], Any]:
    """An argparse `type` running `check` on the flag's text; argparse reports a refusal as
    `prog: error: argument --flag: must be ... (got ...)`."""
    def convert(text: str) -> Any:
        try:
            return check(text)
        except CheckError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return convert


POSITIVE_INT = arg_type(checks.positive_int)
NON_NEGATIVE_INT = arg_type(checks.non_negative_int)
POSITIVE_NUMBER = arg_type(checks.positive_number)
NON_NEGATIVE_NUMBER = arg_type(checks.non_negative_number)
FRACTION = arg_type(checks.fraction)
SEED = arg_type(checks.seed)
DETECTION_SIZE = arg_type(checks.detection_size)


def check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace,
                rules: Mapping[str, Check]) -> None:
    """Rules argparse cannot apply value by value: on a flag's several numbers ("crop": the
    check gets the list) or on several flags ("val_fraction test_fraction": it gets both)."""
    for names, check in rules.items():
        flags = names.split()
        try:
            check(*(getattr(args, flag) for flag in flags))
        except CheckError as err:
            label = "argument" if len(flags) == 1 else "arguments"
            parser.error(f"{label} {' and '.join('--' + flag for flag in flags)}: {err}")


def setup_logging(verbose: bool = True) -> None:
    """INFO (or only warnings) from ppgan on stderr; call before `import paddle`."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # `import paddle` adds its own INFO handler; our level keeps it from leaking ppgan's logs.
    logging.getLogger("ppgan").setLevel(level)
    # Paddle warns at import that ccache (for building custom C++ ops) is missing: irrelevant.
    warnings.filterwarnings("ignore", message="No ccache found")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where Ctrl-C raises KeyboardInterrupt: every cleanup path that
    handles Ctrl-C (temporary files, ffmpeg, worker threads) then handles all three alike."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def block_stop_signals() -> None:
    """For worker threads (an executor's `initializer`): Ctrl-C, SIGTERM and SIGHUP then reach
    the main thread, where Python handles them, and never interrupt a library call (a video
    decoder's read, a pipe write) in the middle of a worker's step. Threads the worker starts,
    such as a decoder's own, inherit the mask."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *STOP_SIGNALS})


def interrupted_status(interrupt: BaseException) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP (a job scheduler, `docker stop`, `timeout`, a closed
    terminal) raise `Interrupted` in the main thread. Repeats while the first unwinds are
    ignored, so a scheduler's second SIGTERM cannot cut the cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    _import_paddle_first()
    raised = []

    def on_signal(signum: int, _frame: Any) -> None:
        if not raised:
            raised.append(signum)
            raise Interrupted(signum)

    # A signal already ignored stays ignored: `nohup` runs a job with SIGHUP ignored on purpose.
    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _import_paddle_first() -> None:
    """`import paddle` installs C-level handlers for SIGTERM (and crash signals) that replace
    any set before it: SIGTERM would then kill the process with no cleanup. Every tool imports
    Paddle anyway, so it is imported here, before our handlers are set."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No ccache found")  # for C++ op builds only
        try:
            import paddle  # noqa: F401
        except ImportError:  # a tool that needs no Paddle, on a machine without it
            pass


def run_main(prog: str, body: Callable[[], int], user_errors: Tuple[Type[BaseException], ...],
             interrupted: str = "interrupted: no output written") -> int:
    """Run a command-line tool's work and turn its endings into exit statuses:
    a full disk, or a path the machine refuses (read-only, no permission) -> one line naming
    the file, status 1;
    a user error (`user_errors`) -> one line `prog: error: ...`, status 2 (PPGAN_DEBUG=1 shows
    the traceback instead);
    Ctrl-C, SIGTERM, SIGHUP -> one line, status 128 + the signal (after the cleanup ran).
    """
    # A log file on a full disk must not print "--- Logging error ---" tracebacks: the run's
    # own error says what went wrong.
    logging.raiseExceptions = False
    try:
        with stop_signals_interrupt():
            return body()
    except KeyboardInterrupt as interrupt:
        sys.stderr.write(f"{prog}: {interrupted}\n")
        return interrupted_status(interrupt)
    except BaseException as err:
        if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
            where = f": {err.filename}" if err.filename else ""
            sys.stderr.write(f"{prog}: error: {err.strerror.lower()}{where}\n")
            return 1
        if isinstance(err, OSError) and err.errno in PATH_ERRNOS and err.filename:
            # A folder the machine will not let us use (a read-only cache, a missing mount).
            sys.stderr.write(f"{prog}: error: {describe(err)}\n")
            return 1
        if not isinstance(err, user_errors) or os.environ.get("PPGAN_DEBUG"):
            raise
        sys.stderr.write(f"{prog}: error: {describe(err)}\n")
        return 2
    finally:
        discard_unfinished()  # in case a signal struck between creating a temporary and guarding it


def report(*lines: str) -> None:
    """Print a tool's summary on stdout. A reader that has stopped (`tool | head`) is no
    failure: the work is done; stdout then goes to /dev/null so that Python's flush at exit
    does not fail either."""
    try:
        for line in lines:
            print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def describe(err: BaseException) -> str:
    """An error as one line: OSErrors as "No such file or directory: path", a KeyError's key."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    if isinstance(err, KeyError) and err.args:
        return one_line(err.args[0])
    return one_line(err)


def one_line(message: object) -> str:
    return " ".join(str(message).split())
