from .api import FaceAlignment, LandmarksType, NetworkSize
