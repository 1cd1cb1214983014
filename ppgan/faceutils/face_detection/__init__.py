from .api import DETECTORS, FaceAlignment, LandmarksType, NetworkSize
