"""BlazeFace (front model) face detector, as in PaddleGAN's `detection/blazeface`."""
from .blazeface_detector import BlazeFaceDetector
from .net_blazeface import BlazeFace

__all__ = ["BlazeFace", "BlazeFaceDetector"]
