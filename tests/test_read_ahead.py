"""read_ahead: items made on a worker thread ahead of the loop, in order, errors where they
belong, and no thread left working once the block is left."""
import threading

import pytest

from ppgan.utils.read_ahead import read_ahead

NAME = "test-read-ahead"


class Counted:
    """Items 0..count-1, recording the thread that made each; `fail_at`: raise there."""

    def __init__(self, count, fail_at=None):
        self.count, self.fail_at = count, fail_at
        self.made, self.threads = 0, set()
        self.made_enough = threading.Event()
        self.enough = None

    def __iter__(self):
        for i in range(self.count):
            if i == self.fail_at:
                raise ValueError(f"cannot make item {i}")
            self.threads.add(threading.current_thread().name)
            self.made += 1
            if self.enough is not None and self.made >= self.enough:
                self.made_enough.set()
            yield i


def _workers():
    return [t for t in threading.enumerate() if t.name.startswith(NAME)]


@pytest.mark.parametrize("chunk", [1, 3, 10, 25])
def test_items_come_in_order_from_the_worker_thread(chunk):
    items = Counted(10)
    with read_ahead(items, chunk, NAME) as taken:
        assert list(taken) == list(range(10))
    assert items.threads and all(name.startswith(NAME) for name in items.threads)
    assert not _workers()


def test_the_next_chunk_is_made_while_the_loop_works_on_this_one():
    items = Counted(100)
    items.enough = 8  # the first chunk of 4, then the next while item 0 is in hand
    with read_ahead(items, 4, NAME) as taken:
        assert next(taken) == 0
        assert items.made_enough.wait(timeout=30)
        assert items.made == 8  # and no further: one chunk ahead


def test_an_error_is_raised_where_its_item_would_have_come():
    got = []
    with pytest.raises(ValueError, match="cannot make item 5"):
        with read_ahead(Counted(10, fail_at=5), 2, NAME) as taken:
            for item in taken:
                got.append(item)
    assert got == [0, 1, 2, 3, 4]
    assert not _workers()


def test_leaving_early_waits_for_the_chunk_under_way():
    items = Counted(1000)
    with pytest.raises(KeyError):
        with read_ahead(items, 50, NAME) as taken:
            next(taken)
            raise KeyError("the loop stops")
    assert not _workers()  # the thread is gone, so nothing reads the source any more
    assert items.made == 100  # this chunk and the one read ahead, no further
