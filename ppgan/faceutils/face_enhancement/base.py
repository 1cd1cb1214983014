"""What the face enhancers (GPEN, GFPGANv1 and GFPGANv1Clean) share: the weights, the network
run on batches (dygraph, or Paddle Inference), and PaddleGAN's pre- and post-processing.

PaddleGAN's processing, kept exactly so that the same input and weights give its result:
- `resize_and_crop`: the shorter side resized to the network's size (cv2 INTER_AREA), the
  longer side centre-cropped to it (its blazeface `resize_and_crop_image`);
- the image goes to the network in the channel order it is given, as [-1, 1]
  (`(x / 255 - 0.5) / 0.5`); the output is clipped to [0, 1], scaled by 255 and truncated to
  uint8;
- the restored face is blended into the resized input with a rectangle inset 26 px and blurred
  twice (101 px Gaussian, sigma 11); the result is float32, as PaddleGAN returns it.

The networks were trained on RGB faces in [-1, 1]: PaddleGAN's GPEN dataset and predictor,
GPEN's own `FaceGAN.img2tensor` (GPEN-BFR-512) and GFPGAN's `GFPGANer` all flip cv2's BGR to RGB
and map x to (x / 255 - 0.5) / 0.5, so callers holding BGR frames convert first; the Wav2Lip
pipeline does (`ppgan.apps.face_enhancer`). (GFPGANer rounds the output to uint8 where PaddleGAN
truncates: one level at most.)
"""
import functools
import logging
from typing import Callable, Optional, Union

import cv2
import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from ...models.generators import GENERATORS
from ...modules.stylegan2 import unfuse_modulated_convs
from ...utils.device import place_network, place_of, resolve_device, resolve_precision
from ...utils.download import resolve_weights
from ...utils.static_graph import StaticModel, cached_export, export_layer
from ...utils.weights import WeightsError, load_state_dict, read_state_dict

logger = logging.getLogger(__name__)

ENGINES = ("eager", "static")
PADDLEGAN_SIZE = 512  # the size PaddleGAN's mask geometry (26 px inset, 101 px blur) is for
# Paddle 3.3.1's oneDNN passes that crash (SIGSEGV) on these networks' graphs; the rest run.
# oneDNN also gets the grouped (per-sample) modulated conv wrong, hence the exported programs'
# non-fused form (`unfuse_modulated_convs`), equal to PaddleGAN's within 1e-5.
ONEDNN_FAULTY_PASSES = ("conv_activation_onednn_fuse_pass", "matmul_activation_fuse_pass")


def resize_and_crop(image: np.ndarray, dim: int) -> np.ndarray:
    """PaddleGAN's `resize_and_crop_image`: shorter side to `dim`, longer side centre-cropped."""
    h, w = image.shape[:2]
    if h > w:
        image = cv2.resize(image, (dim, int(h * (dim / float(w)))), interpolation=cv2.INTER_AREA)
        top = (image.shape[0] - image.shape[1]) // 2
        return image[top:top + dim]
    image = cv2.resize(image, (int(w * (dim / float(h))), dim), interpolation=cv2.INTER_AREA)
    left = (image.shape[1] - image.shape[0]) // 2
    return image[:, left:left + dim]


@functools.lru_cache(maxsize=8)
def blend_mask(size: int) -> np.ndarray:
    """(size, size, 1) float32: PaddleGAN's blurred rectangle, its geometry scaled from 512 px."""
    scale = size / PADDLEGAN_SIZE
    inset = int(round(26 * scale))
    ksize = int(round(101 * scale)) | 1  # odd, as GaussianBlur requires
    mask = np.zeros((size, size), np.float32)
    cv2.rectangle(mask, (inset, inset), (size - inset, size - inset), (1, 1, 1), -1, cv2.LINE_AA)
    for _ in range(2):
        mask = cv2.GaussianBlur(mask, (ksize, ksize), 11 * scale)
    return mask[..., None]


def weights_shape(state_dict: dict, network: str) -> dict:
    """The constructor arguments that shape `network` (a GENERATORS name) as the weights
    `state_dict` are (face size, widths, style size, ...); {} when they lack a key that tells,
    for the loader to name what is missing."""
    try:
        return GENERATORS.get(network).config_from_weights(state_dict)
    except KeyError:
        return {}


class _ImageOnly(nn.Layer):
    """The network's restored image alone (both also return latents or side images), for export."""

    def __init__(self, net: nn.Layer):
        super().__init__()
        self.net = net

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.net(x)[0]


class Enhancer:
    """A face restoration network at `size` px with PaddleGAN's face-enhancement interface.

    Subclasses name the network (`NETWORK`), its default weights (`URL`, "" for none), its
    constructor's name for the face size (`SIZE_ARG`) and how to build it (`build`, whose shape
    arguments are taken from the weights; the defaults are the released weights').
    `path_to_enhance`: a local weights file or URL (None: download the default);
    `size`: the face size of the network (None: the size the weights were made for);
    `batch_size`: faces per network call. Keyword-only: `engine` ("eager": dygraph, as PaddleGAN;
    "static": Paddle Inference with oneDNN, exported once per weights file), `device`,
    `cpu_threads`, `precision` (the static engine's, as `resolve_precision` takes it; eager runs
    in fp32).
    """

    NETWORK = ""
    URL = ""
    SIZE_ARG = "size"

    def __init__(self, path_to_enhance: Optional[str] = None, size: Optional[int] = 512,
                 batch_size: int = 1, *, engine: str = "eager", device: str = "cpu",
                 cpu_threads: int = 0, precision: str = "fp32"):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got '{engine}'")
        if path_to_enhance is None and not self.URL:
            raise WeightsError(f"{self.NETWORK} has no default weights to download: give a "
                               "weights file (a PyTorch one converted by tools/convert_weights.py)")
        path = resolve_weights(path_to_enhance, self.URL)
        state = read_state_dict(path, self.NETWORK)
        shape = weights_shape(state, self.NETWORK)
        self.size = size or shape.pop(self.SIZE_ARG, PADDLEGAN_SIZE)
        shape.pop(self.SIZE_ARG, None)  # `size` given: the loader then checks that it fits
        self.batch_size = max(1, batch_size)
        self.mask = blend_mask(self.size)
        device = resolve_device(device)

        def network() -> nn.Layer:
            net = self.build(self.size, **shape)
            load_state_dict(net, state, path)
            net.eval()
            place_network(net, device)
            return net
        self._forward = self._runner(network, path, engine, device, cpu_threads,
                                     resolve_precision(precision, device))

    @staticmethod
    def build(size: int, **shape) -> nn.Layer:
        raise NotImplementedError

    def _runner(self, network: Callable[[], nn.Layer], path: str, engine: str, device: str,
                cpu_threads: int, precision: str) -> Callable[[np.ndarray], np.ndarray]:
        """NCHW float32 in [-1, 1] to the restored NCHW image, on `engine`. `network()` builds
        the loaded network: the static engine builds it only to export it (GPEN's random
        initialisation alone took 1.7 s of each start-up on 2 cores)."""
        if engine == "eager":
            net, place = network(), place_of(device)

            @paddle.no_grad()
            def forward(x: np.ndarray) -> np.ndarray:
                return net(paddle.to_tensor(x, place=place))[0].numpy()
            return forward
        # The constant input is tiled to the batch, which a traced graph needs as a number: the
        # program is exported for calls of exactly `batch_size` faces.
        batch = self.batch_size
        prefix = f"{self.NETWORK.lower()}-{self.size}-b{batch}-unfused"
        spec = [InputSpec([batch, 3, self.size, self.size], "float32", "x")]
        folder = cached_export(path, prefix, lambda staging: export_layer(
            _ImageOnly(unfuse_modulated_convs(network())), f"{staging}/{prefix}", spec))
        model = StaticModel(f"{folder}/{prefix}", device=device, cpu_threads=cpu_threads,
                            precision=precision, skip_passes=ONEDNN_FAULTY_PASSES)

        def forward(x: np.ndarray) -> np.ndarray:
            count = len(x)  # a short last call is padded with copies of its last face
            full = np.concatenate([x, np.repeat(x[-1:], batch - count, axis=0)])
            return model(full)[0][:count]
        return forward

    def restore(self, faces: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) faces, 0..255 in the network's channel order, to the network's
        restored faces, uint8, in calls of `batch_size` faces (PaddleGAN's pre/post-processing,
        without its blend)."""
        x = (faces.astype(np.float32).transpose(0, 3, 1, 2) / 255.0 - 0.5) / 0.5
        out = np.concatenate([self._forward(np.ascontiguousarray(x[i:i + self.batch_size]))
                              for i in range(0, len(x), self.batch_size)])
        out = np.clip(out * 0.5 + 0.5, 0, 1) * 255.0
        return out.transpose(0, 2, 3, 1).astype(np.uint8)

    def enhance_from_batch(self, img: Union[np.ndarray, paddle.Tensor]) -> np.ndarray:
        """PaddleGAN's `enhance_from_batch`: (N, H, W, 3) images (resized and cropped to the
        network's size) or an (N, 3, size, size) tensor, to (N, size, size, 3) float32 faces."""
        if isinstance(img, paddle.Tensor):
            assert img.shape[1:] == [3, self.size, self.size]
            faces = img.transpose([0, 2, 3, 1]).numpy()
        else:
            faces = np.stack([resize_and_crop(image, self.size) for image in img])
        return self.restore(faces) * self.mask + (1 - self.mask) * faces

    def enhance_from_image(self, img: Union[np.ndarray, paddle.Tensor]) -> np.ndarray:
        """PaddleGAN's `enhance_from_image`: one (H, W, 3) image or (3, size, size) tensor."""
        return self.enhance_from_batch(img[None] if isinstance(img, np.ndarray)
                                       else img.unsqueeze(0))[0]
