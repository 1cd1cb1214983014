"""The interface every face detector implements: a batch of RGB frames in, scored boxes out
(and, from the detectors with landmarks, a mouth mark per box)."""
from typing import List, Optional, Tuple

import numpy as np


class FaceDetector:
    """Base class of the detectors (`sfd`, `blazeface`, `mtcnn`).

    Subclasses implement `detect_batch`, and those with landmarks `detect_batch_with_mouths`;
    the caller (`FaceAlignment`) picks the best box.
    """

    def detect_batch(self, images: np.ndarray) -> List[np.ndarray]:
        """Detect faces in `images`, (N, H, W, 3) uint8 RGB frames of one size.

        Returns one float32 array (K, 5) per frame: rows `[x1, y1, x2, y2, score]` in the input's
        pixel coordinates, sorted by score (highest first); K may be 0.
        """
        raise NotImplementedError

    def detect_batch_with_mouths(self, images: np.ndarray) -> List[Tuple[np.ndarray,
                                                                          Optional[np.ndarray]]]:
        """`detect_batch`'s boxes, each frame's with float32 (K, 3) mouth marks `[x, y,
        half_width]` in the same order (see `ppgan.utils.boxes.Mouth`), or None: this detector
        gives no landmarks (S3FD)."""
        return [(boxes, None) for boxes in self.detect_batch(images)]
