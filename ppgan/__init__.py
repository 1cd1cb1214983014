"""ppgan-wav2lip: audio-driven lip sync (Wav2Lip) in PaddlePaddle, laid out like PaddleGAN."""
__version__ = "0.1.0"
