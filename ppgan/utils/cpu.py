"""What this machine's CPU can do, from /proc/cpuinfo (Linux; elsewhere nothing is known).

The generator's precision on a CPU follows it: bf16 where the CPU multiplies bf16 in hardware
(Intel AMX, or AVX-512 BF16 as on AMD Zen 4), fp32 elsewhere, where oneDNN would emulate bf16
more slowly than it runs fp32.
"""
import functools
import platform
from typing import FrozenSet, Optional

CPUINFO = "/proc/cpuinfo"
# cpuinfo flags of the units that compute bf16 dot products natively.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
# ... and int8 ones (VNNI, in AVX-512 or AVX form, or AMX).
INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# The flags benchmark reports name, to tell the machines they were measured on apart.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def _read_cpuinfo() -> str:
    try:
        with open(CPUINFO) as handle:
            return handle.read()
    except OSError:
        return ""


def _first_field(cpuinfo: str, name: str) -> Optional[str]:
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: Optional[str] = None) -> FrozenSet[str]:
    """The feature flags of the first CPU in `cpuinfo` (default: this machine's /proc/cpuinfo)."""
    cpuinfo = _cached_cpuinfo() if cpuinfo is None else cpuinfo
    return frozenset((_first_field(cpuinfo, "flags") or "").split())


def cpu_name(cpuinfo: Optional[str] = None) -> str:
    cpuinfo = _cached_cpuinfo() if cpuinfo is None else cpuinfo
    return _first_field(cpuinfo, "model name") or platform.processor() or "unknown CPU"


def has_bf16_units(flags: Optional[FrozenSet[str]] = None) -> bool:
    """Whether the CPU computes bf16 in hardware (AMX or AVX-512 BF16)."""
    return bool(BF16_FLAGS & (cpu_flags() if flags is None else flags))


def has_int8_units(flags: Optional[FrozenSet[str]] = None) -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX)."""
    return bool(INT8_FLAGS & (cpu_flags() if flags is None else flags))


def cpu_summary() -> str:
    """'<model name> (flags: ...)' with the REPORTED_FLAGS this CPU has, for benchmark reports."""
    flags = cpu_flags()
    present = [flag for flag in REPORTED_FLAGS if flag in flags]
    return f"{cpu_name()} (flags: {' '.join(present) or 'none of ' + ', '.join(REPORTED_FLAGS)})"


@functools.lru_cache(maxsize=1)
def _cached_cpuinfo() -> str:
    return _read_cpuinfo()
