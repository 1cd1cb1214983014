"""Tests for ppgan.utils.download against a local HTTP server (no internet)."""
import hashlib
import http.server
import os
import socket
import threading
import time
from collections import Counter

import pytest

from ppgan.utils import download
from ppgan.utils.download import (
    DownloadError,
    get_weights_path_from_url,
    resolve_weights,
)

PAYLOAD = os.urandom(200_000) + b"wav2lip"
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
TRUNC_SENT = 1000
# Short limits so a failing case cannot stall the suite.
FAST = dict(retries=0, timeout=5.0, backoff=0.0, progress=False)


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: Counter = Counter()
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send_body(self, body: bytes, length: int = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        with self.lock:
            self.hits[self.path] += 1
            count = self.hits[self.path]
        if self.path.startswith("/good"):
            self._send_body(PAYLOAD)
        elif self.path == "/trunc.bin":
            # Announce the full size, send a little, then hang up.
            self._send_body(PAYLOAD[:TRUNC_SENT], length=len(PAYLOAD))
            self.close_connection = True
        elif self.path == "/nolen.bin":
            # HTTP/1.0 without Content-Length: the body ends at close.
            self.send_response(200)
            self.end_headers()
            self.wfile.write(PAYLOAD)
            self.close_connection = True
        elif self.path == "/flaky.bin" and count == 1:
            self.send_error(503)
        elif self.path == "/flaky.bin":
            self._send_body(PAYLOAD)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler.hits
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    path = tmp_path / "weights"
    monkeypatch.setenv("PPGAN_HOME", str(path))
    return path


def _leftovers(folder) -> list:
    if not os.path.isdir(folder):
        return []
    return [n for n in os.listdir(folder) if ".part" in n]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_good_download_then_cache(server, home):
    base, hits = server
    path = get_weights_path_from_url(f"{base}/good.bin", **FAST)
    assert path == str(home / "good.bin")
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD
    assert _leftovers(home) == []
    assert hits["/good.bin"] == 1

    again = get_weights_path_from_url(f"{base}/good.bin", **FAST)
    assert again == path
    assert hits["/good.bin"] == 1  # served from cache, no request


def test_good_download_with_md5_and_query(server, home):
    base, _ = server
    path = get_weights_path_from_url(f"{base}/good_md5.bin?x=1", PAYLOAD_MD5, **FAST)
    assert os.path.basename(path) == "good_md5.bin"
    with open(path, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == PAYLOAD_MD5


def test_truncated_transfer(server, home):
    base, _ = server
    with pytest.raises(DownloadError) as info:
        get_weights_path_from_url(f"{base}/trunc.bin", **FAST)
    msg = str(info.value)
    assert f"{TRUNC_SENT} of {len(PAYLOAD)} bytes" in msg
    assert "\n" not in msg
    assert not (home / "trunc.bin").exists()
    assert _leftovers(home) == []


def test_truncated_transfer_is_retried(server, home):
    base, hits = server
    before = hits["/trunc.bin"]
    with pytest.raises(DownloadError):
        get_weights_path_from_url(f"{base}/trunc.bin", **{**FAST, "retries": 2})
    assert hits["/trunc.bin"] - before == 3
    assert _leftovers(home) == []


def test_404(server, home):
    base, hits = server
    with pytest.raises(DownloadError) as info:
        get_weights_path_from_url(f"{base}/missing.bin", **{**FAST, "retries": 3})
    assert "404" in str(info.value)
    assert hits["/missing.bin"] == 1  # a 404 is not retried
    assert not (home / "missing.bin").exists()
    assert _leftovers(home) == []


def test_transient_http_error_retried(server, home):
    base, hits = server
    path = get_weights_path_from_url(f"{base}/flaky.bin", **{**FAST, "retries": 1})
    assert hits["/flaky.bin"] == 2
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD


def test_no_content_length(server, home):
    base, _ = server
    path = get_weights_path_from_url(f"{base}/nolen.bin", **FAST)
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD


def test_connection_refused(home):
    url = f"http://127.0.0.1:{_free_port()}/w.pdparams"
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        get_weights_path_from_url(url, **{**FAST, "retries": 1})
    msg = str(info.value)
    assert str(home / "w.pdparams") in msg
    assert url in msg
    assert "refused" in msg
    assert "\n" not in msg
    assert time.monotonic() - start < 5
    assert not (home / "w.pdparams").exists()
    assert _leftovers(home) == []


def test_timeout_is_bounded(home):
    # A listening socket that never answers: connect works, reading stalls.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/slow.bin"
        start = time.monotonic()
        with pytest.raises(DownloadError) as info:
            get_weights_path_from_url(url, **{**FAST, "timeout": 0.3})
        assert time.monotonic() - start < 3
    assert "timed out" in str(info.value)
    assert _leftovers(home) == []


def test_md5_mismatch(server, home):
    base, _ = server
    with pytest.raises(DownloadError) as info:
        get_weights_path_from_url(f"{base}/good_bad_md5.bin", "0" * 32, **FAST)
    assert "md5" in str(info.value)
    assert not (home / "good_bad_md5.bin").exists()
    assert _leftovers(home) == []


def test_cached_file_with_wrong_md5_is_replaced(server, home):
    base, hits = server
    home.mkdir(parents=True)
    (home / "good_stale.bin").write_bytes(b"stale")
    path = get_weights_path_from_url(f"{base}/good_stale.bin", PAYLOAD_MD5, **FAST)
    assert hits["/good_stale.bin"] == 1
    with open(path, "rb") as f:
        assert f.read() == PAYLOAD


def test_ppgan_home_override(server, tmp_path, monkeypatch):
    base, _ = server
    custom = tmp_path / "elsewhere"
    monkeypatch.setenv("PPGAN_HOME", str(custom))
    assert download.WEIGHTS_HOME == str(custom)
    path = get_weights_path_from_url(f"{base}/good_home.bin", **FAST)
    assert path == str(custom / "good_home.bin")
    assert os.path.isfile(path)


def test_default_home(tmp_path, monkeypatch):
    monkeypatch.delenv("PPGAN_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert download.get_weights_home() == str(tmp_path / ".cache" / "ppgan")


def test_resolve_local_path(tmp_path):
    local = tmp_path / "mine.pdparams"
    local.write_bytes(b"w")
    assert resolve_weights(str(local), "http://127.0.0.1:9/unused") == str(local)


def test_resolve_missing_local_path(tmp_path):
    missing = str(tmp_path / "nope.pdparams")
    with pytest.raises(FileNotFoundError) as info:
        resolve_weights(missing, "http://127.0.0.1:9/unused")
    assert missing in str(info.value)
    assert "\n" not in str(info.value)


def test_resolve_none_and_url(server, home):
    base, _ = server
    path = resolve_weights(None, f"{base}/good_default.bin", PAYLOAD_MD5, **FAST)
    assert path == str(home / "good_default.bin")
    path = resolve_weights(f"{base}/good_url.bin", "http://127.0.0.1:9/unused", **FAST)
    assert path == str(home / "good_url.bin")
    assert os.path.isfile(path)


def test_a_files_digest_is_read_once_until_the_file_changes(home, tmp_path, monkeypatch):
    reads = []
    real = download.file_digest
    monkeypatch.setattr(download, "file_digest", lambda path: reads.append(path) or real(path))
    monkeypatch.setattr(download, "_SETTLED_NS", 0)  # files a test writes are seconds old at most
    weights = tmp_path / "w.pdparams"
    weights.write_bytes(b"a" * 5000)
    expected = hashlib.sha256(b"a" * 5000).hexdigest()
    assert download.content_digest(str(weights)) == expected
    assert download.content_digest(str(weights)) == expected
    assert len(reads) == 1
    time.sleep(0.01)
    weights.write_bytes(b"b" * 5000)  # the same size, in place
    assert download.content_digest(str(weights)) == hashlib.sha256(b"b" * 5000).hexdigest()
    assert len(reads) == 2
    moved = tmp_path / "moved.pdparams"
    weights.rename(moved)  # another path: its own entry
    assert download.content_digest(str(moved)) == hashlib.sha256(b"b" * 5000).hexdigest()
    assert len(reads) == 3


def test_a_just_written_file_or_a_read_only_cache_is_read_every_time(home, tmp_path,
                                                                     monkeypatch):
    reads = []
    real = download.file_digest
    monkeypatch.setattr(download, "file_digest", lambda path: reads.append(path) or real(path))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"v" * 100)
    for _ in range(2):  # written under two seconds ago: it may change without its times
        assert download.content_digest(str(video)) == hashlib.sha256(b"v" * 100).hexdigest()
    assert len(reads) == 2 and not (home / "digests").exists()
    monkeypatch.setattr(download, "_SETTLED_NS", 0)
    home.mkdir()
    (home / "digests").write_text("a file where the folder would be")
    for _ in range(2):
        assert download.content_digest(str(video)) == hashlib.sha256(b"v" * 100).hexdigest()
    assert len(reads) == 4
