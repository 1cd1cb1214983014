"""Loading flat weight files and trainer checkpoints into the nets, and the errors for wrong ones."""
import numpy as np
import paddle
import pytest

from ppgan.models import SyncNetColor, Wav2Lip, Wav2LipDiscQual
from ppgan.utils.weights import WeightsError, identify_network, load_weights


def randomised(net):
    rng = np.random.default_rng(0)
    net.set_state_dict({k: rng.random(v.shape).astype("float32") for k, v in net.state_dict().items()})
    return net


@pytest.fixture(scope="module")
def nets():
    paddle.seed(0)
    return {"netG": randomised(Wav2Lip()), "netD": randomised(SyncNetColor()),
            "netDH": randomised(Wav2LipDiscQual())}


def as_numpy(net):
    return {k: v.numpy() for k, v in net.state_dict().items()}


def assert_same_weights(a, b):
    sa, sb = as_numpy(a), as_numpy(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key])


def test_identify_network(nets):
    assert [identify_network(as_numpy(n)) for n in nets.values()] == ["Wav2Lip", "SyncNetColor", "Wav2LipDiscQual"]
    assert identify_network({"foo.weight": 1}) is None


def test_flat_file_loads_every_tensor(tmp_path, nets):
    path = str(tmp_path / "g.pdparams")
    paddle.save(as_numpy(nets["netG"]), path)  # numpy arrays, as PaddleGAN's released files
    net = Wav2Lip()
    load_weights(net, path)
    assert_same_weights(net, nets["netG"])


def test_trainer_checkpoint_picks_the_matching_net(tmp_path, nets):
    path = str(tmp_path / "iter_3_checkpoint.pdparams")
    checkpoint = {name: net.state_dict() for name, net in nets.items()}
    checkpoint["epoch"] = 3
    paddle.save(checkpoint, path)
    for name, cls in (("netG", Wav2Lip), ("netD", SyncNetColor), ("netDH", Wav2LipDiscQual)):
        net = cls()
        load_weights(net, path)
        assert_same_weights(net, nets[name])


def test_other_networks_weights_are_named_in_the_error(tmp_path, nets):
    path = str(tmp_path / "syncnet.pdparams")
    paddle.save(as_numpy(nets["netD"]), path)
    with pytest.raises(WeightsError, match="holds SyncNetColor weights, not Wav2Lip weights"):
        load_weights(Wav2Lip(), path)
    paddle.save({"netD": nets["netD"].state_dict()}, path)
    with pytest.raises(WeightsError, match=r"checkpoint of netD \(SyncNetColor\), with no Wav2Lip"):
        load_weights(Wav2Lip(), path)


def test_missing_unexpected_and_misshaped_keys_are_listed(nets):
    state = as_numpy(nets["netDH"])
    del state["binary_pred.0.bias"]
    state["binary_pred.0.weight"] = np.zeros([2, 512, 1, 1], "float32")
    state["binary_pred.1.weight"] = np.zeros([1], "float32")
    before = as_numpy(nets["netDH"])
    with pytest.raises(WeightsError) as err:
        load_weights(nets["netDH"], state)
    message = str(err.value)
    assert "1 missing (binary_pred.0.bias)" in message
    assert "1 unexpected (binary_pred.1.weight)" in message
    assert "1 mis-shaped (binary_pred.0.weight [2, 512, 1, 1] vs [1, 512, 1, 1])" in message
    np.testing.assert_array_equal(as_numpy(nets["netDH"])["binary_pred.0.bias"], before["binary_pred.0.bias"])


def test_bad_files(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        load_weights(Wav2Lip(), str(tmp_path / "none.pdparams"))
    (tmp_path / "junk.pdparams").write_bytes(b"PK\x03\x04 not a pickle")
    with pytest.raises(WeightsError, match="not a Paddle weights file.*convert_weights.py"):
        load_weights(Wav2Lip(), str(tmp_path / "junk.pdparams"))
    with pytest.raises(WeightsError, match="original PyTorch Wav2Lip checkpoint"):
        load_weights(Wav2Lip(), {"state_dict": {}, "global_step": 1})
