"""Writing files that appear only when complete: the one way every tool writes its outputs.

A temporary name beside the target (same file system, so the final rename is atomic) is renamed
onto the target when the work succeeds and deleted when it fails for any reason: an error,
Ctrl-C, SIGTERM or a full disk. Readers never see half a file, and nothing is left behind.
"""
import errno
import os
import secrets
import shutil
from types import TracebackType
from typing import Optional, Set, Type

# Errors that mean "the disk cannot take more", reported with the path that was being written.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full_error(err_no: int, path: str) -> OSError:
    """OSError(ENOSPC, "No space left on device", path): the form every tool reports."""
    return OSError(err_no, os.strerror(err_no), path)


class AtomicPath:
    """A temporary file (or folder) beside `path` that becomes `path` on `commit()`.

    As a context manager it yields the temporary path, commits when the block completes and
    discards when it raises. A disk-full error raised inside names `path`, not the temporary.
    The temporary keeps the target's extension (ffmpeg and others choose formats by it) and is a
    hidden dot-file: `.<name>.<random>.part<ext>`.
    """

    def __init__(self, path: str, directory: bool = False):
        self.path = os.path.abspath(path)
        self.directory = directory
        folder, name = os.path.split(self.path)
        stem, ext = os.path.splitext(name)
        while True:
            self.temp = os.path.join(folder, _temp_name(name if directory else stem,
                                                        "" if directory else ext, folder))
            # Registered before it exists: a signal at any point leaves nothing unlisted.
            _UNFINISHED.add(self)
            try:  # the umask's permissions, as the file written directly would have
                if directory:
                    os.mkdir(self.temp, 0o777)
                else:
                    os.close(os.open(self.temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                return
            except FileExistsError:
                _UNFINISHED.discard(self)
            except OSError as err:
                _UNFINISHED.discard(self)
                raise _named(err, self.path) from None

    def commit(self) -> str:
        """Move the finished temporary onto the target (replacing it); returns the target."""
        try:
            if self.directory and os.path.isdir(self.path):
                shutil.rmtree(self.path)  # os.replace cannot replace a non-empty folder
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise
        _UNFINISHED.discard(self)
        return self.path

    def discard(self) -> None:
        """Delete the temporary and everything in it."""
        if self.directory:
            shutil.rmtree(self.temp, ignore_errors=True)
        elif os.path.lexists(self.temp):
            os.remove(self.temp)
        _UNFINISHED.discard(self)

    def __enter__(self) -> str:
        return self.temp

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if exc_type is None:
            self.commit()
            return
        self.discard()
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            raise _named(exc, self.path) from None


# Every temporary not yet committed or discarded: what `discard_unfinished` removes.
_UNFINISHED: Set[AtomicPath] = set()


def discard_unfinished() -> None:
    """Delete every temporary still pending: the command-line tools call this when they stop
    (Ctrl-C, SIGTERM) in case the signal struck between creating one and guarding it."""
    for pending in list(_UNFINISHED):
        pending.discard()


def atomic_path(path: str, directory: bool = False) -> AtomicPath:
    """`with atomic_path(out) as temp: write(temp)`: `out` appears only if the block succeeds."""
    return AtomicPath(path, directory)


def _temp_name(stem: str, ext: str, folder: str) -> str:
    """`.<stem>.<random>.part<ext>`, the stem shortened if the name would pass the file
    system's limit (a 250-byte output name must still get a temporary)."""
    token = secrets.token_hex(4)
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    room = limit - len(os.fsencode(f"..{token}.part{ext}"))
    while len(os.fsencode(stem)) > max(room, 1):
        stem = stem[:-1]
    return f".{stem}.{token}.part{ext}"


def _named(err: OSError, path: str) -> OSError:
    """The error naming the user's path (disk full) or unchanged."""
    if err.errno in DISK_FULL_ERRNOS:
        return disk_full_error(err.errno, path)
    return err
