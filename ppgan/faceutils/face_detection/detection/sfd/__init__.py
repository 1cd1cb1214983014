"""S3FD face detector (Zhang et al., 2017), as used by Wav2Lip through face_alignment / PaddleGAN."""
from .net_s3fd import S3FD
from .sfd_detector import SFDDetector

__all__ = ["S3FD", "SFDDetector"]
