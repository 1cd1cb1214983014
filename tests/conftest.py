import paddle
import pytest


@pytest.fixture(scope="session", autouse=True)
def cpu_device():
    paddle.set_device("cpu")
    paddle.set_flags({"FLAGS_paddle_num_threads": 2})
