"""S3FD: parameter names and shapes, the forward pass against an independent PyTorch S3FD, the
vectorised decode + NMS against a naive per-anchor loop, and SFDDetector end to end."""
import math

import numpy as np
import paddle
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

from ppgan.faceutils.detectors import build_detector
from ppgan.faceutils.face_detection.detection.sfd import S3FD, SFDDetector
from ppgan.faceutils.face_detection.detection.sfd.bbox import decode, detections_from_heads, flatten_heads
from ppgan.utils.weights import WeightsError, load_weights

VGG = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
       "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "conv6_1", "conv6_2",
       "conv7_1", "conv7_2"]
HEAD_PREFIXES = ["conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2"]
EXPECTED_KEYS = sorted(
    [f"{name}.{p}" for name in VGG for p in ("weight", "bias")]
    + [f"{h}_mbox_{kind}.{p}" for h in HEAD_PREFIXES for kind in ("conf", "loc") for p in ("weight", "bias")]
    + ["conv3_3_norm.weight", "conv4_3_norm.weight", "conv5_3_norm.weight"])
STRIDES = [4, 8, 16, 32, 64, 128]


# ---------------------------------------------------------------- an independent PyTorch S3FD
class TorchL2Norm(tnn.Module):
    def __init__(self, channels, scale):
        super().__init__()
        self.weight = tnn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x):
        return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) * self.weight.view(1, -1, 1, 1)


class TorchS3FD(tnn.Module):
    def __init__(self):
        super().__init__()
        c = tnn.Conv2d
        self.conv1_1, self.conv1_2 = c(3, 64, 3, 1, 1), c(64, 64, 3, 1, 1)
        self.conv2_1, self.conv2_2 = c(64, 128, 3, 1, 1), c(128, 128, 3, 1, 1)
        self.conv3_1, self.conv3_2, self.conv3_3 = c(128, 256, 3, 1, 1), c(256, 256, 3, 1, 1), c(256, 256, 3, 1, 1)
        self.conv4_1, self.conv4_2, self.conv4_3 = c(256, 512, 3, 1, 1), c(512, 512, 3, 1, 1), c(512, 512, 3, 1, 1)
        self.conv5_1, self.conv5_2, self.conv5_3 = c(512, 512, 3, 1, 1), c(512, 512, 3, 1, 1), c(512, 512, 3, 1, 1)
        self.fc6, self.fc7 = c(512, 1024, 3, 1, 3), c(1024, 1024, 1, 1, 0)
        self.conv6_1, self.conv6_2 = c(1024, 256, 1, 1, 0), c(256, 512, 3, 2, 1)
        self.conv7_1, self.conv7_2 = c(512, 128, 1, 1, 0), c(128, 256, 3, 2, 1)
        self.conv3_3_norm, self.conv4_3_norm, self.conv5_3_norm = TorchL2Norm(256, 10), TorchL2Norm(512, 8), TorchL2Norm(512, 5)
        self.conv3_3_norm_mbox_conf, self.conv3_3_norm_mbox_loc = c(256, 4, 3, 1, 1), c(256, 4, 3, 1, 1)
        self.conv4_3_norm_mbox_conf, self.conv4_3_norm_mbox_loc = c(512, 2, 3, 1, 1), c(512, 4, 3, 1, 1)
        self.conv5_3_norm_mbox_conf, self.conv5_3_norm_mbox_loc = c(512, 2, 3, 1, 1), c(512, 4, 3, 1, 1)
        self.fc7_mbox_conf, self.fc7_mbox_loc = c(1024, 2, 3, 1, 1), c(1024, 4, 3, 1, 1)
        self.conv6_2_mbox_conf, self.conv6_2_mbox_loc = c(512, 2, 3, 1, 1), c(512, 4, 3, 1, 1)
        self.conv7_2_mbox_conf, self.conv7_2_mbox_loc = c(256, 2, 3, 1, 1), c(256, 4, 3, 1, 1)

    def forward(self, x):
        r = TF.relu
        h = TF.max_pool2d(r(self.conv1_2(r(self.conv1_1(x)))), 2, 2)
        h = TF.max_pool2d(r(self.conv2_2(r(self.conv2_1(h)))), 2, 2)
        f3 = r(self.conv3_3(r(self.conv3_2(r(self.conv3_1(h))))))
        f4 = r(self.conv4_3(r(self.conv4_2(r(self.conv4_1(TF.max_pool2d(f3, 2, 2)))))))
        f5 = r(self.conv5_3(r(self.conv5_2(r(self.conv5_1(TF.max_pool2d(f4, 2, 2)))))))
        f7 = r(self.fc7(r(self.fc6(TF.max_pool2d(f5, 2, 2)))))
        f6_2 = r(self.conv6_2(r(self.conv6_1(f7))))
        f7_2 = r(self.conv7_2(r(self.conv7_1(f6_2))))
        f3, f4, f5 = self.conv3_3_norm(f3), self.conv4_3_norm(f4), self.conv5_3_norm(f5)
        c1 = self.conv3_3_norm_mbox_conf(f3)
        c1 = torch.cat([torch.max(torch.max(c1[:, 0:1], c1[:, 1:2]), c1[:, 2:3]), c1[:, 3:4]], dim=1)
        return [c1, self.conv3_3_norm_mbox_loc(f3),
                self.conv4_3_norm_mbox_conf(f4), self.conv4_3_norm_mbox_loc(f4),
                self.conv5_3_norm_mbox_conf(f5), self.conv5_3_norm_mbox_loc(f5),
                self.fc7_mbox_conf(f7), self.fc7_mbox_loc(f7),
                self.conv6_2_mbox_conf(f6_2), self.conv6_2_mbox_loc(f6_2),
                self.conv7_2_mbox_conf(f7_2), self.conv7_2_mbox_loc(f7_2)]


def random_state_dict(seed=0):
    """He-scaled random weights (activations stay O(1) through 19 layers); random L2Norm scales."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, value in S3FD().state_dict().items():
        shape = list(value.shape)
        if key.endswith("_norm.weight"):
            state[key] = rng.uniform(2, 10, shape).astype("float32")
        elif len(shape) == 4:
            state[key] = (rng.standard_normal(shape) * math.sqrt(2.0 / np.prod(shape[1:]))).astype("float32")
        else:
            state[key] = (rng.standard_normal(shape) * 0.05).astype("float32")
    return state


@pytest.fixture(scope="module")
def random_weights():
    return random_state_dict()


@pytest.fixture(scope="module")
def random_weights_file(tmp_path_factory, random_weights):
    path = str(tmp_path_factory.mktemp("s3fd") / "s3fd_random.pdparams")
    # Mean-subtracted pixels reach +-150: shrink the first layer so the heads stay O(1).
    weights = dict(random_weights, **{"conv1_1.weight": random_weights["conv1_1.weight"] / 64})
    paddle.save({k: paddle.to_tensor(v) for k, v in weights.items()}, path)
    return path


# ---------------------------------------------------------------- network
def test_state_dict_names_and_shapes():
    state = S3FD().state_dict()
    assert len(state) == 65
    assert sorted(state) == EXPECTED_KEYS
    shapes = {k: list(v.shape) for k, v in state.items()}
    assert shapes["conv1_1.weight"] == [64, 3, 3, 3]
    assert shapes["fc6.weight"] == [1024, 512, 3, 3]
    assert shapes["fc7.weight"] == [1024, 1024, 1, 1]
    assert shapes["conv6_2.weight"] == [512, 256, 3, 3]
    assert shapes["conv7_2.bias"] == [256]
    assert shapes["conv3_3_norm_mbox_conf.weight"] == [4, 256, 3, 3]
    assert shapes["conv4_3_norm_mbox_conf.weight"] == [2, 512, 3, 3]
    assert shapes["fc7_mbox_loc.weight"] == [4, 1024, 3, 3]
    assert shapes["conv3_3_norm.weight"] == [256]
    for name, scale in (("conv3_3_norm", 10), ("conv4_3_norm", 8), ("conv5_3_norm", 5)):
        np.testing.assert_array_equal(state[f"{name}.weight"].numpy(), scale)


def test_forward_matches_independent_pytorch_s3fd(random_weights):
    net = S3FD()
    net.set_state_dict(random_weights)
    net.eval()
    torch_net = TorchS3FD().eval()
    torch_net.load_state_dict({k: torch.from_numpy(v) for k, v in random_weights.items()}, strict=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 128, 160)).astype("float32")
    with paddle.no_grad():
        ours = [o.numpy() for o in net(paddle.to_tensor(x))]
    with torch.no_grad():
        theirs = [o.numpy() for o in torch_net(torch.from_numpy(x))]
    assert len(ours) == len(theirs) == 12
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, i
        assert a.shape[1] == (2 if i % 2 == 0 else 4), i
        assert 0.05 < np.abs(b).max() < 100, (i, np.abs(b).max())  # the weights kept the scale sane
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=f"head output {i}")


# ---------------------------------------------------------------- decode and NMS
def naive_decode(loc, cx, cy, size):
    x = cx + loc[0] * 0.1 * size
    y = cy + loc[1] * 0.1 * size
    w = size * math.exp(loc[2] * 0.2)
    h = size * math.exp(loc[3] * 0.2)
    return [x - w / 2, y - h / 2, x + w / 2, y + h / 2]


def naive_nms(dets, threshold):
    order = sorted(range(len(dets)), key=lambda i: -dets[i][4])
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        ax1, ay1, ax2, ay2 = dets[best][:4]
        survivors = []
        for j in order:
            bx1, by1, bx2, by2 = dets[j][:4]
            w = max(0.0, min(ax2, bx2) - max(ax1, bx1) + 1)
            h = max(0.0, min(ay2, by2) - max(ay1, by1) + 1)
            union = (ax2 - ax1 + 1) * (ay2 - ay1 + 1) + (bx2 - bx1 + 1) * (by2 - by1 + 1) - w * h
            if w * h / union <= threshold:
                survivors.append(j)
        order = survivors
    return keep


def naive_detections(outputs, image):
    """The reference flow, one anchor at a time: > 0.05, decode, NMS 0.3, > 0.5."""
    dets = []
    for level, stride in enumerate(STRIDES):
        conf, loc = outputs[2 * level], outputs[2 * level + 1]
        for h in range(conf.shape[2]):
            for w in range(conf.shape[3]):
                score = float(conf[image, 1, h, w])
                if score > 0.05:
                    box = naive_decode(loc[image, :, h, w].astype(float), stride / 2 + w * stride,
                                       stride / 2 + h * stride, 4.0 * stride)
                    dets.append(box + [score])
    kept = [dets[i] for i in naive_nms(dets, 0.3)]
    return np.array([d for d in kept if d[4] > 0.5], dtype=np.float64).reshape(-1, 5)


def random_heads(rng, batch, height, width):
    outputs = []
    for stride in STRIDES:
        h, w = max(1, height // stride), max(1, width // stride)
        logits = rng.normal(0, 2.5, (batch, 2, h, w))
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        outputs += [probs.astype("float32"), rng.normal(0, 1, (batch, 4, h, w)).astype("float32")]
    # image 2: every face score below the 0.5 threshold (some still above the 0.05 candidate one)
    for conf in outputs[::2]:
        conf[2, 1] = conf[2, 1] * 0.5
        conf[2, 0] = 1 - conf[2, 1]
    return outputs


def test_vectorised_decode_equals_per_anchor_decode():
    outputs = random_heads(np.random.default_rng(2), 3, 96, 128)
    scores, loc, priors = flatten_heads(outputs)
    boxes = decode(loc, priors)
    index = 0
    for level, stride in enumerate(STRIDES):
        conf, reg = outputs[2 * level], outputs[2 * level + 1]
        for h in range(conf.shape[2]):
            for w in range(conf.shape[3]):
                for image in range(3):
                    assert scores[image, index] == conf[image, 1, h, w]
                    expected = naive_decode(reg[image, :, h, w].astype(float), stride / 2 + w * stride,
                                            stride / 2 + h * stride, 4.0 * stride)
                    np.testing.assert_allclose(boxes[image, index], expected, rtol=1e-5, atol=1e-3)
                index += 1
    assert index == scores.shape[1] == priors.shape[0]


def test_decode_and_nms_equal_naive_loop():
    rng = np.random.default_rng(3)
    outputs = random_heads(rng, 3, 160, 224)
    ours = detections_from_heads(outputs)
    assert len(ours) == 3
    total = 0
    for image in range(3):
        expected = naive_detections(outputs, image)
        assert ours[image].dtype == np.float32 and ours[image].shape == expected.shape
        np.testing.assert_allclose(ours[image], expected, rtol=1e-5, atol=1e-3)
        assert np.all(np.diff(ours[image][:, 4]) <= 0)
        total += len(expected)
    assert len(ours[2]) == 0 and len(ours[0]) > 1 and len(ours[1]) > 1, total


# ---------------------------------------------------------------- the detector
@pytest.mark.parametrize("engine", ["static", "eager"])
def test_detector_on_random_weights(random_weights_file, engine):
    # Static (Paddle Inference) must give the eager network's detections, computed below.
    detector = build_detector("sfd", random_weights_file, engine=engine)
    assert isinstance(detector, SFDDetector)
    assert (detector._static is not None) == (engine == "static")
    assert (detector.net is None) == (engine == "static")  # built only to export it
    frames = np.random.default_rng(4).integers(0, 256, (2, 96, 128, 3), dtype=np.uint8)
    results = detector.detect_batch(frames)
    assert len(results) == 2 and sum(len(boxes) for boxes in results) > 0
    for boxes in results:
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
        assert np.all(boxes[:, 4] > 0.5) and np.all(boxes[:, 4] <= 1)
        assert np.all(np.diff(boxes[:, 4]) <= 0)
        assert np.all(np.isfinite(boxes))
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    # the frames reach the net as RGB minus [104, 117, 123] (the reference's quirk), NCHW
    x = (frames.astype("float32") - np.array([104, 117, 123], "float32")).transpose(0, 3, 1, 2)
    net = S3FD()  # the static engine builds none: it runs the exported program
    load_weights(net, random_weights_file)
    net.eval()
    with paddle.no_grad():
        heads = [o.numpy() for o in net(paddle.to_tensor(np.ascontiguousarray(x)))]
    heads[::2] = [np.exp(c) / np.exp(c).sum(axis=1, keepdims=True) for c in heads[::2]]
    for ours, expected in zip(results, detections_from_heads(heads)):
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)
    # each frame's result does not depend on the rest of the batch
    for i in range(2):
        alone = detector.detect_batch(frames[i:i + 1])[0]
        np.testing.assert_allclose(alone, results[i], rtol=1e-4, atol=1e-2)
    assert detector.detect_batch(np.zeros((0, 96, 128, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="N, H, W, 3"):
        detector.detect_batch(frames[0])


def one_anchor_weights():
    """Zero weights except: conv6_2 outputs 1 on channel 0 everywhere (from its bias), and its conf
    head sums that channel over its 3x3 window into the face logit with bias -7.5. On the 3x3
    conv6_2 map of a 64x64 frame the window holds 9 valid pixels at the centre (logit 1.5,
    score 0.818), 6 on the edges (0.18 < 0.5) and 4 at the corners, so exactly the centre anchor
    (stride 64: centre (96, 96), size 256) is reported. Every other level predicts background."""
    state = {k: np.zeros(v.shape, "float32") for k, v in S3FD().state_dict().items()}
    for name in ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm"):
        state[f"{name}.weight"][:] = 1
    state["conv6_2.bias"][0] = 1.0
    for prefix in HEAD_PREFIXES:
        state[f"{prefix}_mbox_conf.bias"][:] = 10.0
        state[f"{prefix}_mbox_conf.bias"][-1] = 0.0  # face logit; the background ones are 10
    state["conv6_2_mbox_conf.bias"][:] = [0.0, -7.5]
    state["conv6_2_mbox_conf.weight"][1, 0] = 1.0
    state["conv6_2_mbox_loc.bias"][:] = [0.5, -0.25, 1.0, 0.5]
    return state


def test_one_crafted_anchor_lands_where_computed(tmp_path):
    path = str(tmp_path / "one_anchor.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in one_anchor_weights().items()}, path)
    frames = np.random.default_rng(5).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    results = SFDDetector(path_to_detector=path).detect_batch(frames)
    cx, cy = 96 + 0.5 * 0.1 * 256, 96 - 0.25 * 0.1 * 256
    w, h = 256 * math.exp(1.0 * 0.2), 256 * math.exp(0.5 * 0.2)
    expected = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 1 / (1 + math.exp(-1.5))]
    for boxes in results:
        assert boxes.shape == (1, 5)
        np.testing.assert_allclose(boxes[0], expected, rtol=1e-5)


def test_missing_weights_give_a_clear_error(tmp_path):
    missing = str(tmp_path / "nope" / "s3fd.pdparams")
    with pytest.raises((FileNotFoundError, WeightsError)) as info:
        SFDDetector(path_to_detector=missing)
    message = str(info.value)
    assert "\n" not in message and "s3fd.pdparams" in message and "not found" in message


def test_weights_of_another_network_are_refused(tmp_path):
    path = str(tmp_path / "other.pdparams")
    paddle.save({"face_encoder.0.weight": paddle.zeros([1]), "audio_encoder.0.weight": paddle.zeros([1])}, path)
    with pytest.raises(WeightsError, match="not S3FD"):
        SFDDetector(path_to_detector=path)


def test_bf16_heads_are_close_to_fp32(random_weights_file):
    """S3FD in bf16 (its precision follows the generator's; the static engine): the softmaxed
    scores within 0.05 and the box offsets within 5% of their range of fp32's (measured on an
    AVX-512 BF16 EPYC: 0.006 and 1.1%; random weights)."""
    from ppgan.utils.cpu import has_bf16_units

    frames = np.random.default_rng(4).integers(0, 256, (1, 96, 128, 3), dtype=np.uint8)
    fp32, bf16 = (build_detector("sfd", random_weights_file, precision=p)._head_outputs(frames)
                  for p in ("fp32", "bf16"))
    score_off = max(np.abs(a - b).max() for a, b in zip(bf16[::2], fp32[::2]))
    offset_off = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(bf16[1::2], fp32[1::2]))
    assert score_off < 0.05 and offset_off < 0.05
    if has_bf16_units():  # bf16 really ran
        assert offset_off > 1e-5



def test_the_traceable_copy_gives_the_network_s_heads(random_weights):
    """The copy int8 is exported from (L2Norm as a transposed convolution and a power; the
    max-out left to NumPy) equals the network within float rounding; the network is unchanged."""
    from ppgan.faceutils.face_detection.detection.sfd.net_s3fd import L2Norm, legacy_traceable
    from ppgan.faceutils.face_detection.detection.sfd.sfd_detector import _max_out_background

    net = S3FD()
    net.set_state_dict(random_weights)
    net.eval()
    copied = legacy_traceable(net)
    x = paddle.to_tensor(np.random.default_rng(2).standard_normal((1, 3, 96, 128)).astype("float32"))
    with paddle.no_grad():
        expected = [o.numpy() for o in net(x)]
        heads = [o.numpy() for o in copied.heads(x)]
    assert heads[0].shape[1] == 4
    heads[0] = _max_out_background(heads[0])
    for i, (a, b) in enumerate(zip(heads, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"head output {i}")
    assert all(type(getattr(net, name)) is L2Norm for name in ("conv3_3_norm", "conv4_3_norm"))


# int8 against fp32 on a photo it was not calibrated on (random weights; measured on an
# AVX-512 BF16 EPYC, and with oneDNN capped to AVX2: softmaxed scores 0.004-0.013 off on average
# per level, 0.07 at most; box offsets 0.008-0.024 of their range on average, 0.13 at most).
INT8_SCORE_MEAN, INT8_SCORE_MAX = 0.03, 0.15
INT8_OFFSET_MEAN, INT8_OFFSET_MAX = 0.05, 0.3


def test_int8_heads_are_close_to_fp32(random_weights_file):
    """S3FD in int8 (opt-in, quantised on first use on drawn faces)."""
    from ppgan.data_preparation.samples import face_frame

    frames = np.ascontiguousarray(face_frame(360, 203, 150, 160, 30)[None, ..., ::-1])
    fp32, int8 = (build_detector("sfd", random_weights_file, precision=p)._head_outputs(frames)
                  for p in ("fp32", "int8"))
    assert [o.shape for o in int8] == [o.shape for o in fp32]
    score_off = [np.abs(a - b) for a, b in zip(int8[::2], fp32[::2])]
    offset_off = [np.abs(a - b) / np.abs(b).max() for a, b in zip(int8[1::2], fp32[1::2])]
    assert max(o.mean() for o in score_off) < INT8_SCORE_MEAN
    assert max(o.max() for o in score_off) < INT8_SCORE_MAX
    assert max(o.mean() for o in offset_off) < INT8_OFFSET_MEAN
    assert max(o.max() for o in offset_off) < INT8_OFFSET_MAX
    assert max(o.max() for o in offset_off) > 0.02  # int8 ran: bf16 is within 0.011, fp32 1e-5
