"""PaddleGAN's face-enhancement API (`FaceEnhancement`, GPEN; `GFPGANEnhancement`) end to end on
a real face, with random weights saved here, against the pre- and post-processing of PaddleGAN's
face_enhance.py written out independently around the network itself.

The networks are built at 16 px (their 512-px configurations are tested in test_enhancers.py);
tools/compare_with_paddlegan.py runs PaddleGAN's own class on the same inputs.
"""
import cv2
import numpy as np
import paddle
import pytest
import skimage.data

from ppgan.faceutils.face_enhancement import (FaceEnhancement, GFPGANCleanEnhancement,
                                              GFPGANEnhancement)
from ppgan.faceutils.face_enhancement.base import blend_mask
from ppgan.utils.weights import OtherNetworkError

SIZE = 16


def randomised(net, seed):
    """`net` with every weight random (noise strengths and biases too, 0 at init)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in net.state_dict().items():
        v = value.numpy()
        if v.size == 1 or key.endswith("bias"):
            v = v + rng.normal(0, 0.3, v.shape)
        state[key] = v.astype("float32")
    net.set_state_dict(state)
    net.eval()
    return net


@pytest.fixture(scope="module")
def gpen(tmp_path_factory):
    paddle.seed(21)
    net = randomised(FaceEnhancement.build(SIZE), 21)
    path = str(tmp_path_factory.mktemp("enhance") / "gpen16.pdparams")
    paddle.save(net.state_dict(), path)
    return net, path


def face():
    """The astronaut's face, taller than wide (the crop of the long side matters), in BGR."""
    return skimage.data.astronaut()[10:210, 150:310, ::-1].copy()


def expected(net, image):
    """face_enhance.py's steps, written out: shorter side to 16 (INTER_AREA), centre crop,
    [-1, 1], the network, clip, x255, truncate, blend with the blurred inset rectangle."""
    h, w = image.shape[:2]
    tall = h > w
    small = cv2.resize(image if tall else image.transpose(1, 0, 2),
                       (SIZE, int(max(h, w) * SIZE / min(h, w))), interpolation=cv2.INTER_AREA)
    top = (small.shape[0] - SIZE) // 2
    small = small[top:top + SIZE] if tall else small[top:top + SIZE].transpose(1, 0, 2)
    x = paddle.to_tensor(small.transpose(2, 0, 1)[None].astype("float32") / 127.5 - 1)
    with paddle.no_grad():
        y = net(x)[0].numpy()[0].transpose(1, 2, 0)
    restored = np.floor(np.clip((y + 1) / 2, 0, 1) * 255)
    mask = np.zeros((SIZE, SIZE), np.float32)  # 26 px of 512 is 1 px, blur 101 -> 3, sigma 11/32
    cv2.rectangle(mask, (1, 1), (SIZE - 1, SIZE - 1), (1, 1, 1), -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(cv2.GaussianBlur(mask, (3, 3), 11 / 32), (3, 3), 11 / 32)[..., None]
    return restored * mask + (1 - mask) * small


def test_gpen_enhancement_of_a_face_is_paddlegans_processing_around_the_network(gpen):
    net, path = gpen
    enhancer = FaceEnhancement(path, size=SIZE)
    out = enhancer.enhance_from_image(face())
    assert out.shape == (SIZE, SIZE, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected(net, face()), atol=1.0)  # one level: the truncation
    assert np.abs(out - expected(net, face())).mean() < 0.05


def test_size_from_the_weights_batches_and_tensor_input_agree(gpen):
    net, path = gpen
    one = FaceEnhancement(path, size=None)
    assert one.size == SIZE
    wide = np.ascontiguousarray(face().transpose(1, 0, 2))  # wider than tall: the other crop
    batch = FaceEnhancement(path, size=None, batch_size=2).enhance_from_batch(
        np.stack([wide, wide[::-1].copy(), wide]))
    # The same face alone: a batch's kernels may round apart from a single face's, and the
    # output's truncation to levels turns that into one level at a few pixels (1 of 768 values
    # on an Intel Xeon with AMX; none on a Zen 4 EPYC).
    alone = one.enhance_from_image(wide[::-1].copy())
    np.testing.assert_allclose(batch[1], alone, atol=1.0 + 1e-3)
    assert np.mean(np.abs(batch[1] - alone) > 1e-3) < 0.01
    np.testing.assert_allclose(batch[0], expected(net, wide), atol=1.0)
    small = cv2.resize(wide, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    tensor = paddle.to_tensor(small.transpose(2, 0, 1).astype("float32"))
    np.testing.assert_allclose(one.enhance_from_image(tensor), one.enhance_from_image(small),
                               atol=1e-3)


def test_paddlegans_512_mask():
    mask = np.zeros((512, 512), np.float32)
    cv2.rectangle(mask, (26, 26), (486, 486), (1, 1, 1), -1, cv2.LINE_AA)
    mask = cv2.GaussianBlur(cv2.GaussianBlur(mask, (101, 101), 11), (101, 101), 11)
    np.testing.assert_array_equal(blend_mask(512)[..., 0], mask)


def test_gfpgan_takes_net_g_ema_and_the_static_engine_agrees(tmp_path, gpen):
    paddle.seed(22)
    net = randomised(GFPGANEnhancement.build(SIZE), 22)
    path = str(tmp_path / "gfpgan16.pdparams")
    paddle.save({"net_g_ema": net.state_dict()}, path)
    eager = GFPGANEnhancement(path, size=None)
    np.testing.assert_allclose(eager.enhance_from_image(face()), expected(net, face()), atol=1.0)
    static = GFPGANEnhancement(path, size=None, engine="static")
    faces = np.stack([cv2.resize(face(), (SIZE, SIZE))] * 2)
    assert np.abs(static.restore(faces).astype(int) - eager.restore(faces)).max() <= 1
    with pytest.raises(OtherNetworkError, match="holds GPEN weights, not GFPGANv1"):
        GFPGANEnhancement(gpen[1])


@pytest.mark.parametrize("enhancer", [FaceEnhancement, GFPGANEnhancement, GFPGANCleanEnhancement])
def test_the_static_engine_with_onednn_is_the_eager_network(tmp_path, enhancer):
    """The exported program (non-fused modulated convs, oneDNN) gives the eager network's faces:
    within one level in fp32, within 3 levels on average in bf16."""
    paddle.seed(23)
    path = str(tmp_path / "net.pdparams")
    paddle.save(randomised(enhancer.build(SIZE), 23).state_dict(), path)
    faces = np.stack([cv2.resize(face(), (SIZE, SIZE)), cv2.resize(face()[::-1], (SIZE, SIZE))])
    eager = enhancer(path, size=None).restore(faces).astype(int)
    fp32 = enhancer(path, size=None, batch_size=2, engine="static").restore(faces)
    assert np.abs(fp32 - eager).max() <= 1
    bf16 = enhancer(path, size=None, batch_size=2, engine="static", precision="bf16")
    assert np.abs(bf16.restore(faces) - eager).mean() <= 3


def test_the_static_engine_builds_the_network_only_to_export_it(gpen, monkeypatch):
    """A cached export runs without the eager network: building it (GPEN's random
    initialisation) took 1.7 s of each start-up at 512 px."""
    faces = np.stack([cv2.resize(face(), (SIZE, SIZE))] * 2)
    first = FaceEnhancement(gpen[1], size=None, engine="static").restore(faces)

    def built(*args, **kwargs):
        raise AssertionError("the network was built for a cached export")
    monkeypatch.setattr(FaceEnhancement, "build", staticmethod(built))
    assert np.array_equal(FaceEnhancement(gpen[1], size=None, engine="static").restore(faces),
                          first)
    with pytest.raises(AssertionError, match="was built"):  # the eager engine needs it
        FaceEnhancement(gpen[1], size=None)
