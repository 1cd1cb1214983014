"""What every command-line tool shares: one-line errors, checked numeric flags, the same
logging, and the same endings (user errors, a full disk, Ctrl-C, SIGTERM, SIGHUP)."""
import argparse
import contextlib
import errno
import gc
import logging
import os
import sys
import warnings
from typing import Any, Callable, Iterator, Mapping, NoReturn, Optional, Sequence, Tuple, Type

from . import checks
from .atomic import DISK_FULL_ERRNOS, discard_unfinished
from .checks import Check, CheckError
from .errors import UserError, one_line
from .ffmpeg_tools import kill_unfinished
from .stopping import interrupted_status, stop_signals_interrupt

LOG_FORMAT = "[%(asctime)s] %(name)s %(levelname)s: %(message)s"
PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
               errno.ENAMETOOLONG, errno.ELOOP)


# What a tool reports as the user's mistake (one line, status 2) rather than a crash.
USER_ERRORS: Tuple[Type[BaseException], ...] = (UserError, FileNotFoundError)


class ArgumentsError(UserError):
    """Arguments the parser refused that came from a file (a job list's row), not the command
    line: the tool reports them and goes on, where a bad command line ends it."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; a user mistake gets a single line.

    `cross_checks(parser, args)`: the rules over several flags or numbers argparse cannot apply
    flag by flag (`check_flags`, `parser.error`), run after every parse.
    """

    _raising = False

    def __init__(self, *args: Any,
                 cross_checks: Optional[Callable[["OneLineParser", argparse.Namespace], None]] = None,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.cross_checks = cross_checks

    def parse_args(self, args: Optional[Sequence[str]] = None,
                   namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        if self.cross_checks is not None:
            self.cross_checks(self, parsed)
        return parsed

    def error(self, message: str) -> NoReturn:
        if self._raising:
            raise ArgumentsError(message)
        self.exit(2, f"{self.prog}: error: {message}\n")

    @contextlib.contextmanager
    def errors_raised(self) -> Iterator[None]:
        """Within the block, a refusal (argparse's or `check_flags`') raises ArgumentsError with
        the message the command line would print, instead of exiting."""
        self._raising = True
        try:
            yield
        finally:
            self._raising = False


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


def run_main(prog: str, body: Callable[[], int],
             also_user_errors: Tuple[Type[BaseException], ...] = (),
             interrupted: str = "interrupted: no output written") -> int:
    """Run a command-line tool's work and turn its endings into exit statuses:
    a full disk -> one line naming the file, status 1;
    a user error (a `UserError`, a missing input, or one of `also_user_errors`) -> one line
    `prog: error: ...`, status 2;
    any other path the machine refuses (read-only, no permission) -> one line, status 1;
    PPGAN_DEBUG=1 shows the traceback of the last two instead;
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
        ending = error_ending(err, also_user_errors)
        full_disk = isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS
        if ending is None or (os.environ.get("PPGAN_DEBUG") and not full_disk):
            raise
        status, message = ending
        sys.stderr.write(f"{prog}: error: {message}\n")
        return status
    finally:
        # A stop can strike between creating a temporary (or starting ffmpeg) and guarding it.
        kill_unfinished()
        discard_unfinished()


def exit_with(status: int) -> NoReturn:
    """End a tool's process with `status`, as sys.exit does. The heap is frozen first: Python's
    exit would otherwise make one more full garbage collection over the quarter of a million
    objects Paddle's modules hold (0.7 s from a run's last message to its exit on 2 cores, 0.15 s
    frozen). Objects still go when their last reference does; only cycles among them are left
    to the process's end, unfinalised (every output is closed by then)."""
    gc.freeze()
    sys.exit(status)


def error_ending(err: BaseException, also_user_errors: Tuple[Type[BaseException], ...] = ()
                 ) -> Optional[Tuple[int, str]]:
    """The exit status and the one-line message (after "tool: error: ") a tool ends with on
    `err` (see `run_main`); None for an error that is no user's to fix (a bug: its traceback
    is shown)."""
    if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
        where = f": {err.filename}" if err.filename else ""
        return 1, f"{err.strerror.lower()}{where}"
    if isinstance(err, (*USER_ERRORS, *also_user_errors)):
        return 2, describe(err)
    if isinstance(err, OSError) and err.errno in PATH_ERRNOS and err.filename:
        # A folder the machine will not let us use (a read-only cache, a missing mount).
        return 1, describe(err)
    return None


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
