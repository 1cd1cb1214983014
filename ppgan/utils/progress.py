"""Progress a caller can follow: the tqdm bars of long work also tell a hook, so a program
without a terminal (the web page) shows the same progress without reading tqdm's output."""
from typing import Any, Callable, Iterable, Iterator, Optional

from tqdm import tqdm

ProgressHook = Callable[[str, int, int], None]
"""Called with (stage, items done, items in all), e.g. ("lip sync", 48, 300)."""


class ReportedBar(tqdm):
    """A tqdm bar that also tells `hook` (its `desc` as the stage) its count: at the start, then
    after each item it hands on or each `update`, whether the bar is shown or disabled."""

    def __init__(self, iterable: Optional[Iterable] = None, hook: Optional[ProgressHook] = None,
                 **bar: Any):
        super().__init__(iterable, **bar)
        # A disabled tqdm keeps neither its desc nor its count: keep our own.
        self.hook, self.stage, self.done = hook, bar.get("desc", ""), 0
        self._iterating = False
        self._tell()

    def _tell(self) -> None:
        if self.hook is not None:
            self.hook(self.stage, self.done, self.total)

    def update(self, n: float = 1) -> Optional[bool]:
        shown = super().update(n)
        if not self._iterating:  # tqdm's iteration redraws through update: counted there
            self.done += n
            self._tell()
        return shown

    def __iter__(self) -> Iterator:
        self._iterating = True
        try:
            for item in super().__iter__():
                yield item
                self.done += 1
                self._tell()
        finally:
            self._iterating = False
