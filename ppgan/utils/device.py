"""Devices by name: "cpu", "gpu" or "gpu:N" ("cuda" accepted, as PyTorch spells it).

A network's precision is named as `PRECISIONS`; `resolve_precision` turns "auto" (on a CPU, bf16
where it outruns fp32: `cpu.bf16_outruns_fp32`) and a precision the device lacks into the one it
runs.

Each network is placed on the device its caller passes in; Paddle's process-wide default device
(`paddle.set_device`) is never changed here, so two pipelines in one process can use different
devices.
"""
import functools
import logging
from typing import Optional

import paddle

from .checks import PRECISIONS
from .cpu import bf16_outruns_fp32, has_bf16_units

logger = logging.getLogger(__name__)


def default_device(cpu: bool = False) -> str:
    """'gpu' when this Paddle build has CUDA and the user did not ask for the CPU."""
    return "gpu" if paddle.is_compiled_with_cuda() and not cpu else "cpu"


def resolve_device(device: Optional[str] = None) -> str:
    """'cpu' or 'gpu:N' for `device` (None: Paddle's default device). A GPU asked of a build
    without CUDA is the CPU, with a warning, so a CPU-only install still runs."""
    device = paddle.get_device() if device is None else device
    kind, _, index = device.lower().replace("cuda", "gpu").partition(":")
    if kind not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N', got '{device}'")
    if kind == "gpu" and not paddle.is_compiled_with_cuda():
        logger.warning("device '%s' asked for, but this Paddle build has no CUDA: using CPU", device)
        return "cpu"
    return "cpu" if kind == "cpu" else f"gpu:{int(index) if index else 0}"


def gpu_index(device: str) -> Optional[int]:
    """The GPU a resolved device names, or None for the CPU."""
    return None if device == "cpu" else int(device.partition(":")[2])


def place_of(device: str) -> "paddle.CPUPlace | paddle.CUDAPlace":
    """The Paddle place of a resolved device, for `paddle.to_tensor(..., place=)`."""
    index = gpu_index(device)
    return paddle.CPUPlace() if index is None else paddle.CUDAPlace(index)


def place_network(net: paddle.nn.Layer, device: str) -> None:
    """Move `net`'s parameters and buffers to a resolved device."""
    net.to(device=place_of(device))


# fp16 on a GPU only when asked for: "auto" there is fp32.
_DEVICE_PRECISIONS = {"cpu": ("fp32", "bf16", "int8"), "gpu": ("fp32", "fp16")}


def resolve_precision(precision: str, device: str) -> str:
    """The precision ("fp32", "bf16", "int8" or "fp16") a network runs in on a resolved `device`
    when `precision` is asked for. A precision the device lacks (fp16 on a CPU, bf16 or int8 on
    a GPU, bf16 on a CPU without bf16 units or with oneDNN capped below them) is fp32, with a
    warning. int8 runs on any CPU (oneDNN has int8 kernels without VNNI too)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    kind = "cpu" if gpu_index(device) is None else "gpu"
    if precision == "auto":
        return "bf16" if kind == "cpu" and bf16_outruns_fp32() else "fp32"
    if precision not in _DEVICE_PRECISIONS[kind]:
        _warn_once(f"{precision} is not for the {kind.upper()}: running in fp32")
        return "fp32"
    if precision == "bf16" and not has_bf16_units():
        # Paddle 3.3.1 would run the bf16 program in fp32 on a CPU without AVX-512, emulate bf16
        # on one with it (not measured here), and fail ("std::exception") with oneDNN capped
        # below bf16: the fp32 program, the exact one, runs instead.
        _warn_once("this CPU has no bf16 units oneDNN may use (AMX or AVX-512 BF16): "
                   "running in fp32")
        return "fp32"
    return precision


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    """Once per process: each network of a run (generator, detector, enhancer) resolves the
    precision it was given."""
    logger.warning(message)
