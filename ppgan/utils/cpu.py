"""What this machine's CPU can do, from /proc/cpuinfo (Linux; elsewhere nothing is known), as far
as oneDNN is allowed to use it.

The precision "auto" picks on a CPU follows it: bf16 where bf16 outruns fp32 (Intel AMX, or
AVX-512 BF16 on AMD Zen 4), fp32 elsewhere, including Intel's AVX-512 BF16 without AMX, where
bf16 ran slower than fp32 (README.md, "Other CPUs, emulated"). `ONEDNN_MAX_CPU_ISA` (or its older
name `DNNL_MAX_CPU_ISA`) caps the instructions oneDNN uses, to debug or to time an older CPU's
code on a newer one: units above the cap count as absent, as they are to oneDNN.
"""
import functools
import os
import platform
from typing import FrozenSet, Optional

CPUINFO = "/proc/cpuinfo"
# cpuinfo flags of the units that compute bf16 dot products natively.
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
# oneDNN's ISA levels as ONEDNN_MAX_CPU_ISA names them, each a bit mask that holds the masks of
# the levels below it (oneDNN's dnnl_cpu_isa_t; the levels are only partly ordered).
ONEDNN_ISA_MASKS = {
    "SSE41": 0x1, "AVX": 0x3, "AVX2": 0x7, "AVX2_VNNI": 0xF, "AVX2_VNNI_2": 0x1F,
    "AVX512_CORE": 0x27, "AVX512_CORE_VNNI": 0x67, "AVX512_CORE_BF16": 0xE7,
    "AVX10_1_512": 0x1EF, "AVX512_CORE_FP16": 0x1EF, "AVX10_1_512_AMX": 0xFEF,
    "AVX512_CORE_AMX": 0xFEF, "AVX10_1_512_AMX_FP16": 0x1FEF, "AVX512_CORE_AMX_FP16": 0x1FEF,
}
# The lowest level that lets oneDNN use each bf16 unit.
_FLAG_ISA = {"avx512_bf16": "AVX512_CORE_BF16", "amx_bf16": "AVX512_CORE_AMX"}
AMD_VENDOR = "AuthenticAMD"
ISA_CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # oneDNN reads the first set
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


def cpu_vendor(cpuinfo: Optional[str] = None) -> str:
    """cpuinfo's vendor_id ("GenuineIntel", "AuthenticAMD"), or "" where none is given."""
    cpuinfo = _cached_cpuinfo() if cpuinfo is None else cpuinfo
    return _first_field(cpuinfo, "vendor_id") or ""


def cpu_name(cpuinfo: Optional[str] = None) -> str:
    cpuinfo = _cached_cpuinfo() if cpuinfo is None else cpuinfo
    return _first_field(cpuinfo, "model name") or platform.processor() or "unknown CPU"


def onednn_isa_cap() -> Optional[str]:
    """The ISA level oneDNN is capped at by the environment (upper case), or None: no cap
    (unset, "ALL", "DEFAULT", or a name oneDNN does not know and so ignores)."""
    for variable in ISA_CAP_VARIABLES:
        value = os.environ.get(variable, "").strip().upper()
        if value:
            return value if value in ONEDNN_ISA_MASKS else None
    return None


def usable_flags(flags: FrozenSet[str], cap: Optional[str]) -> FrozenSet[str]:
    """`flags` without the bf16 units' flags that an ISA cap (`onednn_isa_cap`) keeps oneDNN
    from."""
    if cap is None:
        return flags
    allowed = ONEDNN_ISA_MASKS[cap]
    return frozenset(flag for flag in flags if flag not in _FLAG_ISA
                     or ONEDNN_ISA_MASKS[_FLAG_ISA[flag]] & ~allowed == 0)


def _this_cpus_usable_flags() -> FrozenSet[str]:
    return usable_flags(cpu_flags(), onednn_isa_cap())


def has_bf16_units(flags: Optional[FrozenSet[str]] = None) -> bool:
    """Whether the CPU computes bf16 in hardware (AMX or AVX-512 BF16); for this machine
    (`flags` None), whether oneDNN may use them."""
    return bool(BF16_FLAGS & (_this_cpus_usable_flags() if flags is None else flags))


def bf16_outruns_fp32(flags: Optional[FrozenSet[str]] = None,
                      vendor: Optional[str] = None) -> bool:
    """Whether bf16 is the faster precision on this CPU (`flags` and `vendor` None: this
    machine, as far as oneDNN may go): with AMX's tiles (3.4-3.8 times fp32 for the generator on
    a Xeon), or with AVX-512 BF16 on AMD (about 2 times on Zen 4). AVX-512 BF16 on Intel cores
    without AMX (Cooper Lake, or a Xeon with oneDNN capped below AMX) ran the generator and S3FD
    at 0.7-0.8 times fp32."""
    flags = _this_cpus_usable_flags() if flags is None else flags
    vendor = cpu_vendor() if vendor is None else vendor
    return "amx_bf16" in flags or ("avx512_bf16" in flags and vendor == AMD_VENDOR)


def cpu_summary() -> str:
    """'<model name> (flags: ...)' with the REPORTED_FLAGS this CPU has, and the ISA cap oneDNN
    runs under if any, for benchmark reports."""
    flags = cpu_flags()
    present = [flag for flag in REPORTED_FLAGS if flag in flags]
    cap = onednn_isa_cap()
    capped = f", oneDNN capped at {cap}" if cap else ""
    return (f"{cpu_name()} (flags: {' '.join(present) or 'none of ' + ', '.join(REPORTED_FLAGS)}"
            f"{capped})")


@functools.lru_cache(maxsize=1)
def _cached_cpuinfo() -> str:
    return _read_cpuinfo()
