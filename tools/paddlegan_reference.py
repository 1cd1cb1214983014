"""Runs PaddleGAN's own GPEN / GFPGANv1 / FaceEnhancement on random weights, for
tools/compare_with_paddlegan.py.

PaddleGAN's package imports far more than these need (and its name is ours), so `make_shim`
copies just their source files from a PaddleGAN checkout into a minimal `ppgan` tree with stub
registries; `PYTHONPATH=SHIM python tools/paddlegan_reference.py CONFIG OUT.npz` then builds the
network there (in a process of its own), randomises every weight, buffer and noise strength from
CONFIG's seed, and saves the state dict, the input and the outputs. The "FaceEnhancement" case
saves the random GPEN weights to CONFIG's "weights" file, runs PaddleGAN's class on the BGR
astronaut face and saves its image.
"""
import json
import os
import shutil
import sys

SOURCES = ["models/generators/gpen.py", "models/generators/generator_styleganv2.py",
           "models/generators/gfpganv1_arch.py",
           "models/discriminators/discriminator_styleganv2.py",
           "modules/equalized.py", "modules/upfirdn2d.py", "modules/fused_act.py",
           "faceutils/face_enhancement/face_enhance.py",
           "faceutils/face_detection/detection/blazeface/utils.py"]

_REGISTRY = ("class _Registry:\n"
             "    def register(self, *args, **kwargs):\n"
             "        return lambda cls: cls\n")
STUBS = {
    "__init__.py": "", "models/__init__.py": "", "modules/__init__.py": "",
    "utils/__init__.py": "", "models/discriminators/__init__.py": "",
    "faceutils/__init__.py": "", "faceutils/face_enhancement/__init__.py": "",
    "faceutils/face_detection/__init__.py": "",
    "faceutils/face_detection/detection/__init__.py": "",
    "faceutils/face_detection/detection/blazeface/__init__.py": "",
    "utils/download.py": "def get_path_from_url(url):\n    raise RuntimeError('no downloads')\n",
    "models/generators/builder.py": _REGISTRY + "GENERATORS = _Registry()\n",
    "models/discriminators/builder.py": _REGISTRY + "DISCRIMINATORS = _Registry()\n",
    # gpen.py imports StyleGANv2Generator from the package, face_enhance.py GPEN.
    "models/generators/__init__.py": ("from .generator_styleganv2 import StyleGANv2Generator\n"
                                      "from .gpen import GPEN\n"),
}


def make_shim(checkout: str, dst: str) -> str:
    """A minimal importable `ppgan` under `dst` with PaddleGAN's files from `checkout`."""
    for rel in SOURCES:
        target = os.path.join(dst, "ppgan", rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(os.path.join(checkout, "ppgan", rel), target)
    for rel, text in STUBS.items():
        target = os.path.join(dst, "ppgan", rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(text)
    return dst


def shim_environment(shim: str) -> dict:
    """This process's environment with the shim, alone, on PYTHONPATH (its `ppgan` is
    PaddleGAN's, not ours)."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": shim}


def randomised_state(net, rng):
    """Every entry moved off its initial value: constants (biases, noise strengths, the ones of
    GFPGAN's noise maps) get random ones, so each takes part in the comparison."""
    state = {}
    for key, value in net.state_dict().items():
        v = value.numpy()
        if key.endswith(".kernel"):
            pass  # the fixed FIR filter
        elif ".noises." in key:
            v = rng.normal(0, 1, v.shape)
        elif v.size == 1:  # noise strengths, 0 at init
            v = rng.normal(0, 0.5, v.shape)
        elif key.endswith("bias"):
            v = v + rng.normal(0, 0.2, v.shape)
        state[key] = v.astype("float32")
    return state


def astronaut_face():
    """The input of the FaceEnhancement case: scikit-image's astronaut, face crop, BGR."""
    import skimage.data
    return skimage.data.astronaut()[10:210, 150:310, ::-1].copy()


def run_face_enhancement(cfg: dict, out_path: str) -> None:
    import numpy as np
    import paddle
    from ppgan.faceutils.face_enhancement.face_enhance import FaceEnhancement
    from ppgan.models.generators.gpen import GPEN

    paddle.seed(cfg["seed"])
    net = GPEN(size=512, style_dim=512, n_mlp=8)
    paddle.save(randomised_state(net, np.random.default_rng(cfg["seed"])), cfg["weights"])
    image = FaceEnhancement(path_to_enhance=cfg["weights"]).enhance_from_image(astronaut_face())
    np.savez(out_path, image=np.asarray(image))


def run(cfg: dict, out_path: str) -> None:
    if cfg["name"] == "FaceEnhancement":
        return run_face_enhancement(cfg, out_path)
    import numpy as np
    import paddle
    from ppgan.models.generators.gfpganv1_arch import GFPGANv1
    from ppgan.models.generators.gpen import GPEN

    paddle.seed(cfg["seed"])
    net = {"GPEN": GPEN, "GFPGANv1": GFPGANv1}[cfg["name"]](**cfg["kwargs"])
    net.eval()
    rng = np.random.default_rng(cfg["seed"])
    state = randomised_state(net, rng)
    net.set_state_dict(state)
    size = cfg["size"]
    x = rng.uniform(-1, 1, (cfg["batch"], 3, size, size)).astype("float32")
    with paddle.no_grad():
        if cfg["name"] == "GPEN":
            image, latent = net(paddle.to_tensor(x), return_latents=True)
            outputs = {"image": image, "latent": latent}
        else:
            image, rgbs = net(paddle.to_tensor(x))
            outputs = {"image": image, **{f"rgb{i}": rgb for i, rgb in enumerate(rgbs)}}
    np.savez(out_path, x=x, **{"out/" + k: v.numpy() for k, v in outputs.items()},
             **{"sd/" + k: v for k, v in state.items()})


if __name__ == "__main__":
    run(json.loads(sys.argv[1]), sys.argv[2])
