"""What this machine's CPU is and has, read from `/proc/cpuinfo` (Linux; empty elsewhere).

One parser for the library's choices (`settings.float32_faster`) and the
benchmarks' headers (`cpu_description`), so that both read the same fields.
"""

import os
import platform


def cpuinfo_fields(text=None):
    """The first processor's fields in `/proc/cpuinfo` (or in `text`), keys and values stripped.

    `{}` where the file cannot be read (not Linux, a sandbox without /proc).
    """
    if text is None:
        try:
            with open("/proc/cpuinfo") as f:
                text = f.read()
        except OSError:
            return {}
    block = text.strip().split("\n\n")[0]
    pairs = (line.split(":", 1) for line in block.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def cpu_flags(fields):
    """The instruction-set flags of `cpuinfo_fields`' result, as a set."""
    return set(fields.get("flags", "").split())


def intel_bf16_without_amx(cpuinfo=None):
    """Whether the CPU (`/proc/cpuinfo`, or its text) is Intel with AVX-512 BF16 and no AMX."""
    fields = cpuinfo_fields(cpuinfo)
    flags = cpu_flags(fields)
    return (fields.get("vendor_id") == "GenuineIntel" and "avx512_bf16" in flags
            and "amx_bf16" not in flags)


def bf16_faster_than_fp32(cpuinfo=None):
    """Whether bfloat16 training is expected to beat float32 on this CPU.

    Where bfloat16 matmuls run well above the float32 rate: AMX (Intel), or
    AVX-512 BF16 on AMD (Zen 4 and Zen 5). Not on Intel CPUs with AVX-512 BF16
    and no AMX (there bf16 steps are slower than fp32), nor on CPUs without
    bf16 instructions (figures per CPU: docs/performance.md).
    """
    fields = cpuinfo_fields(cpuinfo)
    flags = cpu_flags(fields)
    return "amx_bf16" in flags or (fields.get("vendor_id") == "AuthenticAMD"
                                   and "avx512_bf16" in flags)


def cpu_description(cpuinfo=None):
    """`"<model> (family F model M), N logical CPUs; AMX: yes|no, AVX-512 BF16: ..., AVX-512F: ..."`."""
    fields = cpuinfo_fields(cpuinfo)
    flags = cpu_flags(fields)
    model = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']} model {fields['model']})"

    def has(*names):
        return "yes" if flags and all(n in flags for n in names) else "no"

    return (f"{model}, {os.cpu_count()} logical CPUs; AMX: {has('amx_tile', 'amx_bf16')}, "
            f"AVX-512 BF16: {has('avx512_bf16')}, AVX-512F: {has('avx512f')}")
