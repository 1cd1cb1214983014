"""Compare our GPEN, GFPGANv1 and FaceEnhancement with PaddleGAN's own code, on random weights.

    python tools/compare_with_paddlegan.py --paddlegan PATH_TO_PADDLEGAN_CHECKOUT

PaddleGAN's classes run in a process of their own from a minimal shim of its source files
(tools/paddlegan_reference.py); ours run here on the same weights and inputs. Prints the largest
difference of each case and exits 1 if any exceeds its tolerance: 1e-4 for the networks' outputs,
1 level of 255 for FaceEnhancement's image (GPEN-512, on scikit-image's astronaut face).
"""
import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from typing import Dict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from paddlegan_reference import astronaut_face, make_shim, shim_environment  # noqa: E402
from ppgan.utils.cli import exit_with  # noqa: E402

logger = logging.getLogger("compare_with_paddlegan")

NETWORK_TOLERANCE = 1e-4
IMAGE_TOLERANCE = 1.0  # levels of 255
GFPGAN_512 = dict(out_size=512, num_style_feat=512, channel_multiplier=1,
                  resample_kernel=[1, 3, 3, 1], fix_decoder=True, num_mlp=8, lr_mlp=0.01,
                  input_is_latent=True, different_w=True, narrow=1, sft_half=True)
NETWORK_CASES = [
    {"name": "GPEN", "seed": 5, "size": 8, "batch": 2,
     "kwargs": {"size": 8, "style_dim": 32, "n_mlp": 2, "channel_multiplier": 1}},
    {"name": "GPEN", "seed": 6, "size": 16, "batch": 1,
     "kwargs": {"size": 16, "style_dim": 16, "n_mlp": 3, "blur_kernel": [1, 2, 1]}},
    {"name": "GFPGANv1", "seed": 3, "size": 64, "batch": 2,
     "kwargs": {**GFPGAN_512, "out_size": 64, "num_style_feat": 64, "num_mlp": 2, "narrow": 0.25}},
    {"name": "GFPGANv1", "seed": 4, "size": 32, "batch": 1,
     "kwargs": {"out_size": 32, "num_style_feat": 32, "num_mlp": 2, "narrow": 0.125,
                "channel_multiplier": 2}},  # shared w through the mapping network, full SFT
]


def run_reference(shim: str, case: dict, out: str) -> Dict[str, np.ndarray]:
    """PaddleGAN's result for `case`, computed in the shim (its own process and PYTHONPATH)."""
    subprocess.run([sys.executable, os.path.join(HERE, "paddlegan_reference.py"),
                    json.dumps(case), out], check=True, env=shim_environment(shim), cwd=shim)
    data = np.load(out)
    return {key: data[key] for key in data.files}


def network_difference(case: dict, data: Dict[str, np.ndarray]) -> float:
    """Our network on PaddleGAN's weights and input: the largest difference of any output."""
    import paddle
    from ppgan.models.generators import GFPGANv1, GPEN
    from ppgan.utils.weights import load_weights

    net = {"GPEN": GPEN, "GFPGANv1": GFPGANv1}[case["name"]](**case["kwargs"])
    net.eval()
    load_weights(net, {k[3:]: v for k, v in data.items() if k.startswith("sd/")})
    with paddle.no_grad():
        image, extra = net(paddle.to_tensor(data["x"]), **(
            {"return_latents": True} if case["name"] == "GPEN" else {}))
    ours = {"image": image, **({"latent": extra} if case["name"] == "GPEN"
                               else {f"rgb{i}": r for i, r in enumerate(extra)})}
    theirs = {k[4:]: v for k, v in data.items() if k.startswith("out/")}
    if sorted(ours) != sorted(theirs):
        raise RuntimeError(f"outputs differ in kind: ours {sorted(ours)}, PaddleGAN's {sorted(theirs)}")
    return max(float(np.abs(ours[k].numpy() - theirs[k]).max()) for k in ours)


def image_difference(weights: str, data: Dict[str, np.ndarray]) -> float:
    from ppgan.faceutils.face_enhancement import FaceEnhancement

    ours = FaceEnhancement(path_to_enhance=weights).enhance_from_image(astronaut_face())
    return float(np.abs(ours.astype(np.float64) - data["image"]).max())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--paddlegan", required=True, help="a PaddleGAN source checkout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    failed = False
    with tempfile.TemporaryDirectory(prefix="ppgan-compare-") as tmp:
        shim = make_shim(os.path.abspath(args.paddlegan), os.path.join(tmp, "shim"))
        for i, case in enumerate(NETWORK_CASES):
            diff = network_difference(case, run_reference(shim, case, f"{tmp}/case{i}.npz"))
            failed |= diff > NETWORK_TOLERANCE
            logger.info("%-8s %-3d px: max |ours - PaddleGAN's| = %.3g (tolerance %g)",
                        case["name"], case["size"], diff, NETWORK_TOLERANCE)
        case = {"name": "FaceEnhancement", "seed": 7, "weights": f"{tmp}/gpen512.pdparams"}
        diff = image_difference(case["weights"], run_reference(shim, case, f"{tmp}/api.npz"))
        failed |= diff > IMAGE_TOLERANCE
        logger.info("FaceEnhancement GPEN-512 image: max |ours - PaddleGAN's| = %.3g levels "
                    "(tolerance %g)", diff, IMAGE_TOLERANCE)
    logger.info("FAILED: above tolerance" if failed else "all within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    exit_with(main())
