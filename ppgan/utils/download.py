"""Download and cache pretrained weights, in the manner of PaddleGAN.

Files land in ``WEIGHTS_HOME/<basename of url>``. ``WEIGHTS_HOME`` is
``~/.cache/ppgan`` unless the environment variable ``PPGAN_HOME`` says
otherwise; it is read at call time so tests and users can redirect it late.

A download is written to a temporary ``<name>.<random>.part`` file in the
same folder and renamed into place only once it is known to be complete, so
an interrupted transfer can never be mistaken for a cached file.
"""
import hashlib
import http.client
import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO, Optional

from tqdm import tqdm

from .atomic import atomic_path
from .errors import UserError, one_line

__all__ = [
    "DownloadError",
    "WEIGHTS_HOME",
    "content_digest",
    "file_digest",
    "get_weights_home",
    "get_weights_path_from_url",
    "resolve_weights",
]

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS_HOME = os.path.join("~", ".cache", "ppgan")
_CHUNK_SIZE = 1 << 16
# Status codes worth retrying; any other HTTP error (404, 403, ...) will not
# go away by asking again.
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


class DownloadError(UserError, RuntimeError):
    """A weights file could not be downloaded; the message says what to do."""


class _Transient(Exception):
    """Internal: a failure worth retrying; ``reason`` is a short phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def get_weights_home() -> str:
    """Return the cache folder, honouring ``PPGAN_HOME`` as of now."""
    home = os.environ.get("PPGAN_HOME") or DEFAULT_WEIGHTS_HOME
    return os.path.abspath(os.path.expanduser(home))


def __getattr__(name: str) -> str:
    # ``download.WEIGHTS_HOME`` stays a plain attribute for PaddleGAN-style
    # callers, yet follows PPGAN_HOME changes made after import.
    if name == "WEIGHTS_HOME":
        return get_weights_home()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _basename(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise DownloadError(f"cannot tell a file name from URL {url}")
    return urllib.parse.unquote(name)


def file_digest(path: str, algorithm: str = "sha256") -> "hashlib._Hash":
    """The hash of the file at `path` (read in blocks: weights files are hundreds of MB), for
    checking a download or keying a cache by content."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


# A file written this recently may be written again within its file system's time resolution
# without its times changing: its digest is not remembered yet.
_SETTLED_NS = 2_000_000_000


def content_digest(path: str) -> str:
    """The SHA-256 (hex) of the file at `path`, remembered under WEIGHTS_HOME/digests by the
    file's identity (device, inode, size, modification and change times in ns): a weights file
    or video is read once, not on every run, and any write to it makes it read again."""
    stat = os.stat(path)
    identity = [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    name = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:32]
    memo = os.path.join(get_weights_home(), "digests", name + ".json")
    try:
        with open(memo, encoding="utf-8") as f:
            saved = json.load(f)
        if saved["identity"] == identity:
            return saved["sha256"]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable
        pass
    digest = file_digest(path).hexdigest()
    if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > _SETTLED_NS:
        try:
            os.makedirs(os.path.dirname(memo), exist_ok=True)
            with atomic_path(memo) as partial, open(partial, "w", encoding="utf-8") as f:
                json.dump({"path": os.path.abspath(path), "identity": identity,
                           "sha256": digest}, f)
        except OSError:  # a read-only or full cache folder: read again next time
            pass
    return digest


def _manual_hint(final_path: str) -> str:
    return f"download it by hand and save it as {final_path}, or pass a local path"


def _reason(exc: BaseException) -> str:
    """Short human reason for a network-level failure."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(
        exc, urllib.error.HTTPError
    ):
        if not isinstance(exc.reason, BaseException):
            return one_line(exc.reason)
        exc = exc.reason  # the socket error underneath says more
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"host not found: {one_line(exc.strerror or exc)}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return one_line(text)


def _content_length(resp: http.client.HTTPResponse) -> Optional[int]:
    value = resp.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # a garbled header only costs us the completeness check


def _copy_body(
    resp: http.client.HTTPResponse, out: BinaryIO, total: Optional[int],
    desc: str, progress: bool,
) -> int:
    """Stream the body into ``out``; return how many bytes arrived."""
    received = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc=desc, disable=not progress, leave=False,
              file=sys.stderr) as bar:
        while True:
            try:
                block = resp.read(_CHUNK_SIZE)
            except http.client.IncompleteRead as e:  # chunked bodies
                received += len(e.partial)
                out.write(e.partial)
                break
            if not block:
                break
            out.write(block)
            received += len(block)
            bar.update(len(block))
    return received


def _fetch_once(
    url: str, final_path: str, md5sum: Optional[str], timeout: float,
    progress: bool,
) -> None:
    """One attempt: download to a temp file, verify, rename into place (nothing is left
    behind on an error, Ctrl-C or SIGTERM)."""
    name = os.path.basename(final_path)
    with atomic_path(final_path) as tmp_path:
        request = urllib.request.Request(url, headers={"User-Agent": "ppgan"})
        with open(tmp_path, "wb") as out, \
                urllib.request.urlopen(request, timeout=timeout) as resp:
            total = _content_length(resp)
            received = _copy_body(resp, out, total, name, progress)
        if total is not None and received != total:
            raise _Transient(
                f"incomplete transfer: received {received} of {total} bytes")
        if md5sum and file_digest(tmp_path, "md5").hexdigest() != md5sum.lower():
            raise DownloadError(
                f"md5 mismatch for {url}: the downloaded file is not the "
                f"expected one (want {md5sum}); {_manual_hint(final_path)}")


def _attempt(
    url: str, final_path: str, md5sum: Optional[str], timeout: float,
    progress: bool,
) -> None:
    """Run one attempt, sorting failures into transient or final."""
    try:
        _fetch_once(url, final_path, md5sum, timeout, progress)
    except urllib.error.HTTPError as e:
        status = f"HTTP {e.code} {one_line(e.reason or '')}".rstrip()
        if e.code in _TRANSIENT_HTTP:
            raise _Transient(status) from e
        raise DownloadError(
            f"cannot download {url} ({status}); {_manual_hint(final_path)}"
        ) from e
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        # Offline, DNS, refused, reset, timeout: all may be momentary.
        raise _Transient(_reason(e)) from e


def _download(
    url: str, final_path: str, md5sum: Optional[str], retries: int,
    timeout: float, backoff: float, progress: bool,
) -> None:
    for attempt in range(retries + 1):
        try:
            _attempt(url, final_path, md5sum, timeout, progress)
            return
        except _Transient as e:
            if attempt >= retries:
                raise DownloadError(
                    f"cannot download {url} ({e.reason}); "
                    f"{_manual_hint(final_path)}") from e.__cause__
            delay = backoff * (2 ** attempt)
            logger.warning("download of %s failed (%s); retrying in %.1fs",
                           url, e.reason, delay)
            time.sleep(delay)


def get_weights_path_from_url(
    url: str,
    md5sum: Optional[str] = None,
    *,
    retries: int = 2,
    timeout: float = 30.0,
    backoff: float = 1.0,
    progress: Optional[bool] = None,
) -> str:
    """Return the local path of the weights at ``url``, downloading if needed.

    ``retries`` extra attempts are made for transient failures (network
    errors, truncated bodies, 5xx/429), waiting ``backoff * 2**n`` seconds;
    ``timeout`` bounds each socket operation. ``progress=None`` shows a bar
    only when stderr is a terminal. Raises ``DownloadError``.
    """
    home = get_weights_home()
    final_path = os.path.join(home, _basename(url))
    if os.path.isfile(final_path):
        if not md5sum or file_digest(final_path, "md5").hexdigest() == md5sum.lower():
            logger.debug("using cached weights %s", final_path)
            return final_path
        logger.warning("cached %s fails its md5 check; downloading again",
                       final_path)
    try:
        os.makedirs(home, exist_ok=True)
    except OSError as e:
        raise DownloadError(
            f"cannot create weights folder {home} ({_reason(e)}); "
            f"set PPGAN_HOME to a writable folder, or pass a local path"
        ) from e
    show = sys.stderr.isatty() if progress is None else progress
    logger.info("downloading %s to %s", url, final_path)
    _download(url, final_path, md5sum, max(0, retries), timeout, backoff, show)
    return final_path


def _is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def resolve_weights(
    path_or_url: Optional[str],
    default_url: str,
    md5sum: Optional[str] = None,
    **download_kwargs,
) -> str:
    """Turn a user's weights argument into an existing local file path.

    ``None`` means the default weights (downloaded from ``default_url`` and
    checked against ``md5sum`` if given); an http(s) URL is downloaded
    (unverified, since the checksum belongs to the default); anything else
    must be an existing local path. Extra keyword arguments go to
    ``get_weights_path_from_url``.
    """
    if path_or_url is None:
        return get_weights_path_from_url(default_url, md5sum, **download_kwargs)
    if _is_url(path_or_url):
        return get_weights_path_from_url(path_or_url, **download_kwargs)
    path = os.path.expanduser(path_or_url)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"weights file not found: {path} (give an existing file, an "
            f"http(s) URL, or nothing to download the default weights)")
    return path
