"""How work ends: atomic writes, the command-line endings (run_main) and ffmpeg's failures."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from ppgan.utils.atomic import AtomicPath, atomic_path, discard_unfinished
from ppgan.utils.cli import exit_with, run_main
from ppgan.utils.ffmpeg_tools import FFmpegError, failed, failure
from ppgan.utils.stopping import stop_deferred


def test_atomic_path_appears_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out.csv"
    with atomic_path(str(target)) as temp:
        assert os.path.basename(temp).startswith(".out.") and temp.endswith(".part.csv")
        open(temp, "w").write("done")
        assert not target.exists()
    assert target.read_text() == "done" and os.listdir(tmp_path) == ["out.csv"]
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(str(target)) as temp:
            open(temp, "w").write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "done" and os.listdir(tmp_path) == ["out.csv"]


def test_atomic_folder_replaces_an_old_one(tmp_path):
    target = tmp_path / "clip"
    target.mkdir()
    (target / "stale.jpg").write_text("old")
    with atomic_path(str(target), directory=True) as temp:
        open(os.path.join(temp, "0.jpg"), "w").write("new")
    assert os.listdir(target) == ["0.jpg"] and os.listdir(tmp_path) == ["clip"]


def test_a_full_disk_inside_the_block_names_the_target(tmp_path):
    target = str(tmp_path / "weights.pdparams")
    with pytest.raises(OSError) as raised:
        with atomic_path(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/somewhere/internal")
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == target
    assert os.listdir(tmp_path) == []


def test_unguarded_temporaries_are_removed_when_a_tool_stops(tmp_path):
    """A signal can strike after a temporary is created and before a `with` guards it."""
    pending = AtomicPath(str(tmp_path / "video.mp4"))
    assert os.path.exists(pending.temp)
    discard_unfinished()
    assert os.listdir(tmp_path) == []


def test_run_main_statuses_and_one_line_messages(tmp_path, capsys):
    def disk_full():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/Out.MP4")

    def user_error():
        raise ValueError("the box is\nnot inside the frame")

    def terminated():
        with atomic_path(str(tmp_path / "out.mp4")):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
            raise AssertionError("SIGTERM did not stop the work")

    assert run_main("tool", disk_full, (ValueError,)) == 1
    assert capsys.readouterr().err == "tool: error: no space left on device: /data/Out.MP4\n"
    assert run_main("tool", user_error, (ValueError,)) == 2
    assert capsys.readouterr().err == "tool: error: the box is not inside the frame\n"
    assert run_main("tool", terminated, (ValueError,)) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "tool: interrupted: no output written\n"
    assert os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored afterwards
    with pytest.raises(RuntimeError):  # not a user error: a real failure keeps its traceback
        run_main("tool", lambda: (_ for _ in ()).throw(RuntimeError("bug")), (ValueError,))


def test_a_tool_process_ends_with_its_status_its_exit_handlers_run_on_a_frozen_heap():
    """`exit_with` ends as sys.exit does (the status, the atexit handlers), the heap frozen
    first so that Python's exit skips its last full collection."""
    script = ("import atexit, gc\n"
              "from ppgan.utils.cli import exit_with\n"
              "atexit.register(lambda: print(gc.get_freeze_count() > 0, flush=True))\n"
              "exit_with(3)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (3, "True\n"), done.stderr


def test_ffmpeg_write_failures_count_even_with_status_0():
    # Debian's ffmpeg 5.1 exits 0 when the disk fills while it writes the MP4 trailer.
    stderr = b"Error writing trailer of /out/x.mp4: No space left on device\n"
    assert failed(0, stderr) and not failed(0, b"") and failed(1, b"")
    error = failure(stderr, "/out/result.mp4")
    assert isinstance(error, OSError) and error.errno == errno.ENOSPC
    assert error.filename == "/out/result.mp4"
    other = failure(b"[in#0 @ 0x55d1] x.mp4: Invalid data found when processing input\n")
    assert isinstance(other, FFmpegError)
    assert str(other) == "x.mp4: Invalid data found when processing input"


def test_a_path_the_machine_refuses_is_one_line_status_1(tmp_path, capsys):
    def read_only():
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/cache/static")

    assert run_main("tool", read_only, (ValueError,)) == 1
    assert capsys.readouterr().err == "tool: error: Read-only file system: /cache/static\n"


def test_a_missing_input_the_tool_declares_a_user_error_is_status_2(capsys):
    def missing():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "face.mp4")

    assert run_main("tool", missing, (FileNotFoundError,)) == 2
    assert capsys.readouterr().err == "tool: error: No such file or directory: face.mp4\n"


def test_long_output_names_still_get_a_temporary(tmp_path):
    name = "x" * (250 - len(".mp4")) + ".mp4"  # fits the 255-byte limit; its temporary must too
    with atomic_path(str(tmp_path / name)) as temp:
        assert len(os.path.basename(temp)) <= 255 and temp.endswith(".part.mp4")
        open(temp, "w").write("ok")
    assert os.listdir(tmp_path) == [name]


def test_a_stop_inside_a_deferred_step_is_raised_when_the_step_ends(tmp_path):
    steps = []

    def body():
        with stop_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the handler runs here, but must not raise yet
            steps.append("finished the step")
        steps.append("went on")  # never: the stop is raised as the step ends
        return 0

    assert run_main("tool", body, ()) == 128 + signal.SIGTERM
    assert steps == ["finished the step"]


def test_a_stop_landing_in_a_finaliser_still_stops_the_run():
    """Python drops exceptions raised in a __del__ (as SIGTERM did once in subprocess.Popen's):
    the stop must still end the run, not be spent there."""
    steps = []

    class Finalised:
        def __del__(self):
            signal.raise_signal(signal.SIGTERM)  # the handler raises here, in the finaliser
            steps.append("finaliser ran")

    def body():
        Finalised()  # collected at once
        time.sleep(0.2)
        steps.append("went on")  # never
        return 0

    assert run_main("tool", body, ()) == 128 + signal.SIGTERM
    assert "went on" not in steps


def test_outputs_get_the_umasks_permissions_not_a_temporary_files(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(str(tmp_path / "out.mp4")) as temp:
            open(temp, "w").write("x")
        with atomic_path(str(tmp_path / "clip"), directory=True):
            pass
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "out.mp4").st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / "clip").st_mode & 0o777 == 0o755
