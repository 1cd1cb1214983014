"""Parameter names, shapes and forward behaviour of the three networks, against the layer tables
of the paper's code written out here independently of ppgan's constructors."""
import numpy as np
import paddle
import pytest

from ppgan.models import build_discriminator, build_generator

# (kind, cin, cout, kernel): C = conv+BN, T = transposed conv+BN, N = conv without norm.
def C(ci, co, k): return ("C", ci, co, k)
def T(ci, co, k): return ("T", ci, co, k)
def N(ci, co, k): return ("N", ci, co, k)
def R(c, n=1): return [C(c, c, 3)] * n


AUDIO_HEAD = [C(1, 32, 3), *R(32, 2), C(32, 64, 3), *R(64, 2), C(64, 128, 3), *R(128, 2), C(128, 256, 3)]
AUDIO_TAIL = [C(256, 512, 3), C(512, 512, 1)]
GENERATOR = {
    "face_encoder_blocks": [[C(6, 16, 7)], [C(16, 32, 3), *R(32, 2)], [C(32, 64, 3), *R(64, 3)],
                            [C(64, 128, 3), *R(128, 2)], [C(128, 256, 3), *R(256, 2)],
                            [C(256, 512, 3), *R(512)], [C(512, 512, 3), C(512, 512, 1)]],
    "audio_encoder": AUDIO_HEAD + R(256, 1) + AUDIO_TAIL,
    "face_decoder_blocks": [[C(512, 512, 1)], [T(1024, 512, 3), *R(512)], [T(1024, 512, 3), *R(512, 2)],
                            [T(768, 384, 3), *R(384, 2)], [T(512, 256, 3), *R(256, 2)],
                            [T(320, 128, 3), *R(128, 2)], [T(160, 64, 3), *R(64, 2)]],
}
SYNCNET = {
    "face_encoder": [C(15, 32, 7), C(32, 64, 5), *R(64, 2), C(64, 128, 3), *R(128, 3), C(128, 256, 3),
                     *R(256, 2), C(256, 512, 3), *R(512, 2), C(512, 512, 3), C(512, 512, 3), C(512, 512, 1)],
    "audio_encoder": AUDIO_HEAD + R(256, 2) + AUDIO_TAIL,
}
DISC = {
    "face_encoder_blocks": [[N(3, 32, 7)], [N(32, 64, 5), N(64, 64, 5)], [N(64, 128, 5), N(128, 128, 5)],
                            [N(128, 256, 5), N(256, 256, 5)], [N(256, 512, 3), N(512, 512, 3)],
                            [N(512, 512, 3), N(512, 512, 3)], [N(512, 512, 3), N(512, 512, 1)]],
}


def unit_keys(prefix, unit):
    kind, ci, co, k = unit
    weight = [ci, co, k, k] if kind == "T" else [co, ci, k, k]
    keys = {f"{prefix}.conv_block.0.weight": weight, f"{prefix}.conv_block.0.bias": [co]}
    if kind != "N":
        for name in ("weight", "bias", "_mean", "_variance"):
            keys[f"{prefix}.conv_block.1.{name}"] = [co]
    return keys


def expected_keys(table):
    keys = {}
    for name, units in table.items():
        for i, entry in enumerate(units):
            if isinstance(entry, list):
                for j, unit in enumerate(entry):
                    keys.update(unit_keys(f"{name}.{i}.{j}", unit))
            else:
                keys.update(unit_keys(f"{name}.{i}", entry))
    return keys


def generator_keys():
    keys = expected_keys(GENERATOR)
    keys.update(unit_keys("output_block.0", C(80, 32, 3)))
    keys.update({"output_block.1.weight": [3, 32, 1, 1], "output_block.1.bias": [3]})
    return keys


def disc_keys():
    keys = expected_keys(DISC)
    keys.update({"binary_pred.0.weight": [1, 512, 1, 1], "binary_pred.0.bias": [1]})
    return keys


@pytest.mark.parametrize("builder,name,expected,count", [
    (build_generator, "Wav2Lip", generator_keys, 302),
    (build_discriminator, "SyncNetColor", lambda: expected_keys(SYNCNET), 186),
    (build_discriminator, "Wav2LipDiscQual", disc_keys, 28),
])
def test_state_dict_names_and_shapes(builder, name, expected, count):
    net = builder({"name": name})
    actual = {key: list(value.shape) for key, value in net.state_dict().items()}
    assert len(actual) == count
    assert actual == expected()


@pytest.fixture(scope="module")
def generator():
    paddle.seed(0)
    return build_generator({"name": "Wav2Lip"})


def test_generator_forward_shapes_and_time_folding(generator):
    generator.eval()
    rng = np.random.default_rng(0)
    mels = rng.standard_normal((2, 5, 1, 80, 16)).astype("float32")
    faces = rng.random((2, 6, 5, 96, 96)).astype("float32")
    with paddle.no_grad():
        out5 = generator(paddle.to_tensor(mels), paddle.to_tensor(faces)).numpy()
        # The T=5 layout must equal running each (batch, frame) pair through the 4-D path.
        out4 = generator(paddle.to_tensor(mels[:, 2]), paddle.to_tensor(faces[:, :, 2])).numpy()
    assert out5.shape == (2, 3, 5, 96, 96)
    assert out4.shape == (2, 3, 96, 96)
    np.testing.assert_allclose(out5[:, :, 2], out4, atol=1e-5)
    assert 0.0 <= out5.min() and out5.max() <= 1.0  # sigmoid output


def test_syncnet_embeddings_are_unit_nonnegative_512d():
    paddle.seed(1)
    net = build_discriminator({"name": "SyncNetColor"})
    net.eval()
    mel = paddle.randn([3, 1, 80, 16])
    faces = paddle.rand([3, 15, 48, 96])
    with paddle.no_grad():
        audio_emb, face_emb = (t.numpy() for t in net(mel, faces))
    for emb in (audio_emb, face_emb):
        assert emb.shape == (3, 512)
        assert emb.min() >= 0.0
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cosine = (audio_emb * face_emb).sum(axis=1)
    assert np.all((cosine >= 0) & (cosine <= 1 + 1e-6))


def test_quality_disc_scores_each_frame_and_perceptual_loss_is_bce():
    paddle.seed(2)
    net = build_discriminator({"name": "Wav2LipDiscQual"})
    faces = paddle.rand([2, 3, 5, 96, 96])
    with paddle.no_grad():
        pred = net(faces).numpy()
        loss = net.perceptual_forward(faces).item()
        # Only the lower half is seen: changing the upper half changes nothing.
        changed = faces.numpy().copy()
        changed[:, :, :, :48] = 0.0
        pred_changed = net(paddle.to_tensor(changed)).numpy()
    assert pred.shape == (10, 1)
    assert np.all((pred > 0) & (pred < 1))
    np.testing.assert_allclose(loss, -np.log(pred).mean(), rtol=1e-5)
    np.testing.assert_allclose(pred_changed, pred, atol=1e-6)


def test_registry_rejects_unknown_names():
    with pytest.raises(KeyError, match="no GENERATOR named 'Nope'"):
        build_generator({"name": "Nope"})


@pytest.mark.parametrize("first_row", [1, 2, 10, 44, 47, 70, 95])
def test_decoding_from_a_row_gives_the_whole_faces_rows(generator, first_row):
    """The decoder run on only the rows `first_row` depends on gives the whole decoder's rows
    from there on (eager: oneDNN sums in another order on other shapes, so not bit for bit)."""
    generator.eval()
    rng = np.random.default_rng(1)
    mel = paddle.to_tensor(rng.standard_normal((2, 1, 80, 16)).astype("float32"))
    faces = paddle.to_tensor(rng.random((2, 6, 96, 96)).astype("float32"))
    with paddle.no_grad():
        skips = generator.encode_face(faces)
        whole = generator.decode(mel, skips).numpy()
        lower = generator.decode(mel, skips, first_row).numpy()
    assert lower.shape == (2, 3, 96 - first_row, 96)
    np.testing.assert_allclose(lower, whole[:, :, first_row:], rtol=0, atol=2e-5)
