"""An iterator's items made on a worker thread, a few ahead of the loop that takes them: frames
are decoded and resized (OpenCV releases the GIL) while the detector works on the ones before."""
import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator, Optional, Tuple, TypeVar

from .stopping import block_stop_signals, submit_unsplit

T = TypeVar("T")


@contextlib.contextmanager
def read_ahead(items: Iterable[T], chunk: int, name: str) -> Iterator[Iterator[T]]:
    """Within the block, `items` in order, made on a thread `name` in chunks of `chunk` items,
    the next chunk made while the loop takes this one. An error making an item is raised where
    the loop takes it. Leaving the block (at the end, on an error, on a stop) waits for the
    chunk under way, so the thread never outlives what it reads (a video closed under a
    decoder aborts the process)."""
    source = iter(items)

    def next_chunk() -> Tuple[list, Optional[Exception]]:
        made: list = []
        try:
            for item in itertools.islice(source, chunk):
                made.append(item)
        except Exception as err:  # the items made before it still come first
            return made, err
        return made, None

    with ThreadPoolExecutor(1, name, block_stop_signals) as pool:
        pending = submit_unsplit(pool, next_chunk)

        def taken() -> Iterator[T]:
            nonlocal pending
            while True:
                made, error = pending.result()
                if error is None and made:
                    pending = submit_unsplit(pool, next_chunk)
                yield from made
                if error is not None:
                    raise error
                if not made:
                    return

        yield taken()
