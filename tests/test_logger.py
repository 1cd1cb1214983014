"""`native_output_silenced` on several threads: the descriptors are the process's."""
import os
import threading

from ppgan.utils.logger import native_output_silenced


def test_overlapping_silenced_blocks_on_two_threads_restore_the_descriptor(tmp_path):
    """A block opened on one thread and another opened on a second before the first closes:
    output stays silenced until the last closes, and the descriptor then writes where it did
    (each block restoring what it found left it on /dev/null)."""
    path = tmp_path / "out.txt"
    with open(path, "wb", buffering=0) as out:
        fd = out.fileno()
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

        def first():
            with native_output_silenced(fd):
                first_in.set()
                second_in.wait(10)
            first_out.set()

        thread = threading.Thread(target=first)
        thread.start()
        first_in.wait(10)
        with native_output_silenced(fd):
            second_in.set()
            first_out.wait(10)
            os.write(fd, b"silenced ")  # the first block has closed, this one has not
        thread.join()
        os.write(fd, b"kept")
    assert path.read_bytes() == b"kept"


def test_nested_blocks_on_one_thread(tmp_path):
    path = tmp_path / "out.txt"
    with open(path, "wb", buffering=0) as out:
        fd = out.fileno()
        os.write(fd, b"a")
        with native_output_silenced(fd):
            with native_output_silenced(fd):
                os.write(fd, b"b")
            os.write(fd, b"c")
        os.write(fd, b"d")
    assert path.read_bytes() == b"ad"
