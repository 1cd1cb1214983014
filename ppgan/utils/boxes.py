"""The face box type every stage shares, named for its order: (x1, y1, x2, y2).

The detectors give boxes in this order, and everything inside the pipeline keeps it (arrays of
boxes have these four columns). The references' flags use (top, bottom, left, right); they are
converted once, where they enter. A face may come with a `Mouth` mark, from the detectors that
give landmarks (MTCNN, BlazeFace).
"""
from typing import NamedTuple


class XYXYBox(NamedTuple):
    """A box in pixels: left x1, top y1, right x2, bottom y2, the last two exclusive (the box
    is `frame[y1:y2, x1:x2]`)."""
    x1: int
    y1: int
    x2: int
    y2: int

    @classmethod
    def from_top_bottom_left_right(cls, top: int, bottom: int, left: int, right: int) -> "XYXYBox":
        """From the order of the `--box` flag (the references')."""
        return cls(left, top, right, bottom)


class Mouth(NamedTuple):
    """Where a face's mouth is, in frame pixels: its centre (x, y) and half its width."""
    x: float
    y: float
    half_width: float

    def scaled(self, factor: float) -> "Mouth":
        return Mouth(self.x * factor, self.y * factor, self.half_width * factor)
