"""BlazeFace: PaddleGAN-compatible parameters, computed anchors, decoding, weighted NMS, detector."""
import logging

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppgan.faceutils.face_detection import FaceAlignment
from ppgan.faceutils.detectors import build_detector
from ppgan.faceutils.face_detection.detection.blazeface import BlazeFace, BlazeFaceDetector
from ppgan.faceutils.face_detection.detection.blazeface.anchors import generate_anchors, load_anchors
from ppgan.faceutils.face_detection.detection.blazeface.detect import (
    decode_boxes, postprocess, square_region, to_network_input, weighted_nms)
from ppgan.utils.weights import WeightsError, identify_network, load_weights

# From PaddleGAN's net_blazeface.py: a 5x5 stem conv, 11 + 5 BlazeBlocks of 2 convs each, 4 heads;
# every conv has a bias and there is no BatchNorm: (1 + 16*2 + 4) * 2 tensors.
PG_TENSOR_COUNT = 74
PG_PARAMETER_COUNT = 101390
PG_SHAPES = {
    "backbone1.0.weight": [24, 3, 5, 5],
    "backbone1.2.convs.0.weight": [24, 1, 3, 3],  # depthwise
    "backbone1.3.convs.1.weight": [28, 24, 1, 1],
    "backbone1.4.convs.0.weight": [28, 1, 3, 3],  # first stride-2 block
    "backbone1.12.convs.1.bias": [88],
    "backbone2.0.convs.1.weight": [96, 88, 1, 1],
    "backbone2.4.convs.0.weight": [96, 1, 3, 3],
    "classifier_8.weight": [2, 88, 1, 1],
    "classifier_16.weight": [6, 96, 1, 1],
    "regressor_8.weight": [32, 88, 1, 1],
    "regressor_16.bias": [96],
}


def random_state_dict(seed=0):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(v.shape) * 0.1).astype("float32")
            for k, v in BlazeFace().state_dict().items()}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("blazeface") / "blazeface.pdparams")
    paddle.save(random_state_dict(), path)  # numpy arrays, like PaddleGAN's released files
    return path


def test_parameters_match_paddlegan():
    state = BlazeFace().state_dict()
    assert len(state) == PG_TENSOR_COUNT
    assert sum(int(np.prod(v.shape)) for v in state.values()) == PG_PARAMETER_COUNT
    for name, shape in PG_SHAPES.items():
        assert list(state[name].shape) == shape, name
    assert "backbone1.1.weight" not in state  # index 1 is the stem's ReLU, as in PaddleGAN
    assert identify_network(state) == "BlazeFace"


def test_forward_matches_explicit_reference_padding():
    # The reference pads 1/2 before the stem and 0/2 before stride-2 depthwise convs with F.pad;
    # this net folds that into the convs, which must give the same numbers.
    paddle.seed(1)
    net = BlazeFace()
    x = paddle.randn([1, 3, 128, 128])
    stem = net.backbone1[0]
    expected = F.relu(F.conv2d(F.pad(x, [1, 2, 1, 2]), stem.weight, stem.bias, stride=2))
    np.testing.assert_allclose(net.backbone1[:2](x).numpy(), expected.numpy(), atol=1e-5)
    block = net.backbone1[4]  # 28 -> 32 channels, stride 2
    y = paddle.randn([1, 28, 64, 64])
    dw = block.convs[0]
    h = block.convs[1](F.conv2d(F.pad(y, [0, 2, 0, 2]), dw.weight, dw.bias, stride=2, groups=28))
    skip = F.pad(F.max_pool2d(y, 2, 2), [0, 0, 0, 4, 0, 0, 0, 0])
    np.testing.assert_allclose(block(y).numpy(), F.relu(h + skip).numpy(), atol=1e-5)
    boxes, scores = net(paddle.randn([2, 3, 128, 128]))
    assert boxes.shape == [2, 896, 16] and scores.shape == [2, 896, 1]


def test_anchors_are_the_front_model_grid(tmp_path):
    anchors = generate_anchors()
    assert anchors.shape == (896, 4) and anchors.dtype == np.float32
    np.testing.assert_array_equal(anchors[:, 2:], 1.0)  # fixed_anchor_size
    fine, coarse = anchors[:512].reshape(16, 16, 2, 4), anchors[512:].reshape(8, 8, 6, 4)
    for grid, size in ((fine, 16), (coarse, 8)):
        centres = (np.arange(size) + 0.5) / size
        np.testing.assert_allclose(grid[..., 0], np.broadcast_to(centres[None, :, None], grid.shape[:3]))
        np.testing.assert_allclose(grid[..., 1], np.broadcast_to(centres[:, None, None], grid.shape[:3]))
    np.testing.assert_allclose(anchors[[0, 1, 2, 32, 512, 895]],
                               [[1 / 32, 1 / 32, 1, 1], [1 / 32, 1 / 32, 1, 1], [3 / 32, 1 / 32, 1, 1],
                                [1 / 32, 3 / 32, 1, 1], [1 / 16, 1 / 16, 1, 1], [15 / 16, 15 / 16, 1, 1]])
    path = tmp_path / "anchors.npy"
    np.save(path, anchors.astype(np.float64))
    np.testing.assert_array_equal(load_anchors(str(path)), anchors)
    np.save(path, anchors[:10])
    with pytest.raises(ValueError, match="896"):
        load_anchors(str(path))


# One confident anchor: row 3, column 5 of the 8x8 map, 3rd anchor of the cell -> centre
# (5.5/8, 3.5/8) = (0.6875, 0.4375). Offsets in 128-pixel units: dx=12.8, dy=-6.4, w=32, h=64.
ANCHOR = 512 + (3 * 8 + 5) * 6 + 2
BOX01 = [0.7875 - 0.125, 0.3875 - 0.25, 0.7875 + 0.125, 0.3875 + 0.25]  # [0.6625, 0.1375, 0.9125, 0.6375]


def hand_made_outputs(batch=1):
    raw_boxes = np.zeros((batch, 896, 16), np.float32)
    raw_scores = np.full((batch, 896, 1), -1000.0, np.float32)  # clipped to -100: score 0
    raw_boxes[:, ANCHOR, :4] = [12.8, -6.4, 32.0, 64.0]
    raw_boxes[:, ANCHOR, 4:6] = [-12.8, 12.8]  # first keypoint at anchor centre + (-0.1, 0.1)
    raw_scores[:, ANCHOR, 0] = 1000.0  # clipped to 100: score 1
    return raw_boxes, raw_scores


@pytest.mark.parametrize("height, width, crop, expected_box", [
    # Wide 200 x 300 frame. Pad: square side 300 at (0, -50). Crop: side 200 at (50, 0).
    (200, 300, False, [0.6625 * 300, 0.1375 * 300 - 50, 0.9125 * 300, 0.6375 * 300 - 50]),  # 198.75, -8.75
    (200, 300, True, [0.6625 * 200 + 50, 0.1375 * 200, 0.9125 * 200 + 50, 0.6375 * 200]),  # 182.5, 27.5
    # Tall 300 x 200 frame. Pad: side 300 at (-50, 0). Crop: side 200 at (0, 50).
    (300, 200, False, [0.6625 * 300 - 50, 0.1375 * 300, 0.9125 * 300 - 50, 0.6375 * 300]),  # 148.75, 41.25
    (300, 200, True, [0.6625 * 200, 0.1375 * 200 + 50, 0.9125 * 200, 0.6375 * 200 + 50]),  # 132.5, 77.5
])
def test_decode_maps_back_to_the_frame(height, width, crop, expected_box):
    region = square_region(height, width, crop)
    faces = postprocess(*hand_made_outputs(2), generate_anchors(), region, 0.5, 0.3)
    assert len(faces) == 2
    for face in faces:
        assert face.shape == (1, 17) and face.dtype == np.float32
        np.testing.assert_allclose(face[0, :4], expected_box, atol=1e-3)
        side, x0, y0 = region
        np.testing.assert_allclose(face[0, 4:6], [(0.6875 - 0.1) * side + x0, (0.4375 + 0.1) * side + y0],
                                   atol=1e-3)
        assert face[0, 16] == pytest.approx(1.0)


def test_score_threshold_uses_the_clipped_sigmoid():
    raw_boxes, raw_scores = hand_made_outputs()
    raw_scores[0, ANCHOR, 0] = np.log(0.6 / 0.4)  # sigmoid -> 0.6
    region = square_region(128, 128, False)
    (face,) = postprocess(raw_boxes, raw_scores, generate_anchors(), region, 0.5, 0.3)
    np.testing.assert_allclose(face[:, 16], [0.6], atol=1e-6)
    np.testing.assert_allclose(face[0, :4], np.array(BOX01) * 128, atol=1e-3)
    (none,) = postprocess(raw_boxes, raw_scores, generate_anchors(), region, 0.75, 0.3)
    assert none.shape == (0, 17)


def detection(box, score, keypoint_value=0.0):
    row = np.full(17, keypoint_value, np.float32)
    row[:4], row[16] = box, score
    return row


def test_weighted_nms_merges_overlaps_into_their_score_weighted_mean():
    a = detection([0, 0, 10, 10], 0.6, 1.0)
    b = detection([1, 1, 11, 11], 0.9, 4.0)  # IoU with a = 81/119 > 0.3
    far = detection([50, 50, 60, 60], 0.7, 9.0)
    merged = weighted_nms(np.stack([a, far, b]), 0.3)
    assert merged.shape == (2, 17)
    expected = (0.9 * b[:16] + 0.6 * a[:16]) / 1.5  # box (0.6, 0.6, 10.6, 10.6), keypoints 2.8
    np.testing.assert_allclose(merged[0, :16], expected, atol=1e-5)
    assert merged[0, 16] == pytest.approx(0.75)  # mean score of the cluster
    np.testing.assert_array_equal(merged[1], far)
    assert weighted_nms(np.zeros((0, 17), np.float32), 0.3).shape == (0, 17)
    degenerate = weighted_nms(np.stack([detection([5, 5, 5, 5], 0.9)]), 0.3)  # must not loop forever
    assert degenerate.shape == (1, 17)


def test_pad_mode_letterboxes_and_crop_mode_keeps_the_central_square():
    frames = np.full((1, 200, 300, 3), 255, np.uint8)
    padded = to_network_input(frames, crop_to_square=False)
    assert padded.shape == (1, 3, 128, 128) and padded.dtype == np.float32
    np.testing.assert_allclose(padded[0, :, :20], -1.0)  # black bars: 50/300 of 128 rows = 21.3
    np.testing.assert_allclose(padded[0, :, 23:105], 1.0)
    np.testing.assert_allclose(padded[0, :, 108:], -1.0)
    np.testing.assert_allclose(to_network_input(frames, crop_to_square=True), 1.0)


def test_detector_end_to_end_with_saved_random_weights(weights_file):
    detector = build_detector("blazeface", path_to_detector=weights_file)
    assert isinstance(detector, BlazeFaceDetector) and not detector.reference
    expected = random_state_dict()
    for name, value in detector.net.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), expected[name])
    frames = np.random.default_rng(0).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    for thresh in (0.5, 0.0):  # 0.0 keeps every anchor, so NMS surely has work to do
        detector.min_score_thresh = thresh
        results = detector.detect_batch(frames)
        assert len(results) == 2
        for boxes in results:
            assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
            assert np.all(np.isfinite(boxes))
            assert np.all(np.diff(boxes[:, 4]) <= 0) and np.all(boxes[:, 4] >= thresh)
            assert np.all(boxes[:, 4] <= 1)
        if thresh == 0.0:
            assert all(len(boxes) >= 1 for boxes in results)
    assert detector.detect_batch(frames[:0]) == []


def test_detector_uses_the_hand_made_outputs(weights_file, monkeypatch):
    for crop, box in ((False, [198.75, -8.75, 273.75, 141.25]), (True, [182.5, 27.5, 232.5, 127.5])):
        detector = BlazeFaceDetector(weights_file, reference=crop)
        monkeypatch.setattr(detector, "raw_outputs", lambda images: hand_made_outputs(len(images)))
        results = detector.detect_batch(np.zeros((2, 200, 300, 3), np.uint8))
        for boxes in results:
            np.testing.assert_allclose(boxes, [box + [1.0]], atol=1e-3)


def test_face_alignment_wiring_and_device(weights_file, caplog):
    fa = FaceAlignment(face_detector="blazeface", path_to_detector=weights_file, min_score_thresh=0.0)
    found = fa.get_detections_for_batch(np.zeros((2, 64, 96, 3), np.uint8))
    assert len(found) == 2 and all(isinstance(b, tuple) and len(b) == 4 for b in found)
    assert BlazeFaceDetector(weights_file, device="cpu").detect_batch(np.zeros((1, 64, 64, 3), np.uint8))
    if not paddle.device.is_compiled_with_cuda():
        with caplog.at_level(logging.WARNING):
            BlazeFaceDetector(weights_file, device="cuda")
        assert "no CUDA" in caplog.text


def test_wrong_or_incomplete_weights_are_rejected(tmp_path):
    state = random_state_dict()
    del state["regressor_16.bias"]
    path = str(tmp_path / "partial.pdparams")
    paddle.save(state, path)
    with pytest.raises(WeightsError, match="missing.*regressor_16.bias"):
        BlazeFaceDetector(path)
    with pytest.raises(FileNotFoundError):
        BlazeFaceDetector(str(tmp_path / "nope.pdparams"))


# ---- PaddleGAN's detector, written out from its code (detect.py, utils.py, net_blazeface.py) ----
def paddlegan_crop(image, dim=128):
    """PaddleGAN's `resize_and_crop_image`: short side to `dim` (INTER_AREA), central crop."""
    import cv2

    h, w = image.shape[:2]
    if h > w:
        img = cv2.resize(image, (dim, int(h * (dim / float(w)))), interpolation=cv2.INTER_AREA)
        start = (img.shape[0] - img.shape[1]) // 2
        return img[start:start + dim]
    img = cv2.resize(image, (int(w * (dim / float(h))), dim), interpolation=cv2.INTER_AREA)
    start = (img.shape[1] - img.shape[0]) // 2
    return img[:, start:start + dim]


def paddlegan_weighted_nms(detections, threshold=0.3):
    """`_weighted_non_max_suppression`: clusters in the order of their strongest member."""
    def iou(box, others):
        lo = np.maximum(box[:2], others[:, :2])
        hi = np.minimum(box[2:4], others[:, 2:4])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        return inter / (area(box) + area(others) - inter)

    out = []
    remaining = np.argsort(-detections[:, 16])
    while len(remaining):
        detection = detections[remaining[0]].copy()
        mask = iou(detection[:4], detections[remaining, :4]) > threshold
        overlapping, remaining = remaining[mask], remaining[~mask]
        if len(overlapping) > 1:
            scores = detections[overlapping, 16:17]
            detection[:16] = (detections[overlapping, :16] * scores).sum(axis=0) / scores.sum()
            detection[16] = scores.sum() / len(overlapping)
        out.append(detection)
    return np.stack(out)


def outputs_with_boxes(boxes_scores):
    """Raw outputs whose anchors 0, 1, ... decode to the given [x1, y1, x2, y2] (in 0..1 units)
    with the given scores; all other anchors score 0."""
    anchors = generate_anchors()
    raw_boxes = np.zeros((1, 896, 16), np.float32)
    raw_scores = np.full((1, 896, 1), -1000.0, np.float32)
    for k, (box, score) in enumerate(boxes_scores):
        (x1, y1, x2, y2), (cx, cy) = box, anchors[k, :2]
        raw_boxes[0, k, :4] = [((x1 + x2) / 2 - cx) * 128, ((y1 + y2) / 2 - cy) * 128,
                               (x2 - x1) * 128, (y2 - y1) * 128]
        raw_scores[0, k, 0] = np.log(score / (1 - score))
    return raw_boxes, raw_scores


def test_reference_mode_is_paddlegans_crop_and_face_order(weights_file, monkeypatch):
    # Face A holds the single strongest anchor (0.99) but weak neighbours (mean 0.71); face B
    # two steady ones (mean 0.9). PaddleGAN returns A first; by mean score B comes first.
    a, b = [0.1, 0.1, 0.3, 0.3], [0.6, 0.6, 0.8, 0.8]
    a2 = [0.11, 0.1, 0.31, 0.3]
    raw = outputs_with_boxes([(a, 0.99), (a2, 0.57), (a, 0.57), (b, 0.9), (b, 0.9)])
    for reference, first in ((True, a), (False, b)):
        detector = BlazeFaceDetector(weights_file, reference=reference)
        monkeypatch.setattr(detector, "raw_outputs", lambda images: raw)
        (boxes,) = detector.detect_batch(np.zeros((1, 128, 128, 3), np.uint8))
        np.testing.assert_allclose(boxes[0, :4] / 128, first, atol=0.011)
    # The whole reference result, against PaddleGAN's algorithm written out above.
    faces = postprocess(*raw, generate_anchors(), square_region(128, 128, True), 0.5, 0.3,
                        by_mean_score=False)[0]
    candidates = np.concatenate([decode_boxes(raw[0], generate_anchors())[0][:5],
                                 [[0.99], [0.57], [0.57], [0.9], [0.9]]], axis=1).astype(np.float32)
    expected = paddlegan_weighted_nms(candidates)
    np.testing.assert_allclose(faces[:, :16] / 128, expected[:, :16], atol=1e-5)
    np.testing.assert_allclose(faces[:, 16], expected[:, 16], atol=1e-5)
    aligner = FaceAlignment(face_detector="blazeface", path_to_detector=weights_file, reference=True)
    monkeypatch.setattr(aligner.face_detector, "raw_outputs", lambda images: raw)
    (box,) = aligner.get_detections_for_batch(np.zeros((1, 128, 128, 3), np.uint8))
    assert box == tuple(int(v * 128) for v in paddlegan_weighted_nms(candidates)[0, :4])
    # Every face, in the detector's order: PaddleGAN's first face first, or by mean score.
    for reference, first in ((True, a), (False, b)):
        aligner = FaceAlignment(face_detector="blazeface", path_to_detector=weights_file,
                                reference=reference)
        monkeypatch.setattr(aligner.face_detector, "raw_outputs", lambda images: raw)
        (faces,) = aligner.get_all_detections_for_batch(np.zeros((1, 128, 128, 3), np.uint8))
        assert len(faces) == 2 and all(isinstance(v, int) for face in faces for v in face)
        np.testing.assert_allclose(np.array(faces[0]) / 128, first, atol=0.011)
        np.testing.assert_allclose(np.array(faces[1]) / 128, b if first is a else a, atol=0.011)


@pytest.mark.parametrize("height, width", [(720, 1280), (1280, 720), (300, 301)])
def test_reference_input_is_paddlegans_central_crop(height, width):
    image = np.random.default_rng(height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = paddlegan_crop(image).astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(to_network_input(image[None], crop_to_square=True)[0],
                               expected.transpose(2, 0, 1), atol=1e-6)
