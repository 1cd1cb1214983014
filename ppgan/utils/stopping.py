"""How work stops: Ctrl-C, SIGTERM and SIGHUP raised as one exception in the main thread,
steps they may not split, and worker threads that leave them to the main thread.

A job scheduler, `docker stop` and `timeout` send SIGTERM, a closed terminal SIGHUP: raised as
`Interrupted` (a KeyboardInterrupt), they unwind through the same cleanup as Ctrl-C.
"""
import contextlib
import os
import signal
import sys
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT_DELAY = 0.05  # seconds; see _reraise_dropped_stop


class Interrupted(KeyboardInterrupt):
    """A stop signal as the KeyboardInterrupt Ctrl-C raises: every cleanup path that handles
    Ctrl-C (temporary files, ffmpeg, worker threads) then handles SIGTERM and SIGHUP alike."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def block_stop_signals() -> None:
    """For worker threads (an executor's `initializer`): Ctrl-C, SIGTERM and SIGHUP then reach
    the main thread, where Python handles them, and never interrupt a library call (a video
    decoder's read, a pipe write) in the middle of a worker's step. Threads the worker starts,
    such as a decoder's own, inherit the mask."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def interrupted_status(interrupt: BaseException) -> int:
    """The shell's convention: 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


class _StopState:
    """What the stop-signal handler knows: whether it has raised, and deferred sections."""
    raised = False
    deferred = 0
    pending: Optional[int] = None


def _on_stop_signal(signum: int, _frame: Any) -> None:
    if _StopState.raised:
        return  # a repeat while the first stop unwinds: let the cleanup finish
    if _StopState.deferred:
        _StopState.pending = signum
        return
    _StopState.raised = True
    raise Interrupted(signum)


def _reraise_dropped_stop(unraisable: Any) -> None:
    """sys.unraisablehook: a stop that landed in a finaliser (a `__del__`, where Python drops
    exceptions) is sent again, otherwise the run would go on with the stop spent. Sent from a
    thread a moment later, so that it lands after this hook (whose exceptions are dropped too)."""
    if isinstance(unraisable.exc_value, Interrupted):
        _StopState.raised = False
        threading.Timer(REPEAT_DELAY, os.kill,
                        (os.getpid(), unraisable.exc_value.signum)).start()
        return
    sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Within the block, Ctrl-C, SIGTERM and SIGHUP (a job scheduler, `docker stop`, `timeout`,
    a closed terminal) raise `Interrupted` in the main thread. Repeats while the first unwinds
    are ignored, so a scheduler's second SIGTERM cannot cut the cleanup short."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    _import_paddle_first()
    _StopState.raised, _StopState.pending = False, None
    # A signal already ignored stays ignored: `nohup` runs a job with SIGHUP ignored on purpose,
    # a shell its background jobs with SIGINT ignored.
    previous = {sig: signal.signal(sig, _on_stop_signal) for sig in STOP_SIGNALS
                if signal.getsignal(sig) is not signal.SIG_IGN}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _reraise_dropped_stop
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def stop_deferred() -> Iterator[None]:
    """Run the block whole: a stop signal arriving inside it is raised when it ends. For steps
    that must not be split, such as starting a child process and taking charge of it (split,
    the child would outlive the run and write its output after the cleanup)."""
    _StopState.deferred += 1
    try:
        yield
    finally:
        _StopState.deferred -= 1
    if not _StopState.deferred and _StopState.pending is not None and not _StopState.raised:
        signum, _StopState.pending = _StopState.pending, None
        _StopState.raised = True
        raise Interrupted(signum)


def submit_unsplit(pool: ThreadPoolExecutor, fn: Callable, *args: Any) -> Future:
    """`pool.submit`, as one step a stop cannot split: the pool starts its worker thread inside
    and tracks it only afterwards, so a stop in between left an untracked thread decoding frames
    while the cleanup closed the video under it (FFmpeg then aborts the process)."""
    with stop_deferred():
        return pool.submit(fn, *args)


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
