"""The switchboard of the CPU numerics: one frozen `Settings`, read by every op.

The ops of this package compute Keras' values with CPU kernels of their own:
hand-written gradients run as XLA loops, dropout masks drawn by one compiled
Philox loop, 16-bit GELUs read from a table of their values, bfloat16
converted by integer arithmetic inside those loops, and (on some Intel CPUs)
bfloat16 matmuls through float32 kernels. Which of them run is decided here,
from one `Settings` value, and nowhere else:

    settings.current()                         # the settings in force
    with settings.use(fast_dropout=True):      # a run, a benchmark, a test
        ...

`trainer.run` enters `use` once per run with the run's flags
(`--fast_dropout`, `--bf16_matmuls`) and its strategy's devices
(`devices_of`). The ops ask the functions below when a function is traced,
so a traced step keeps the choices it was traced under. The settings are
process-wide, not per thread: a `MirroredStrategy` traces each replica's
step in a thread of its own, and every replica must make the same choices.

On a GPU or TPU the CPU devices step aside (`on_accelerator`): dropout takes
Keras' own kernels, GELUs their formula, bfloat16 matmuls bfloat16 kernels
(under "auto") with their bias adds fused, and the compiled loops XLA's own
conversions. They were built for and measured on CPUs, and an accelerator's
compiler fuses elementwise work by itself. The hand-written gradients stay: they keep less activation
memory on every device, and XLA compiles them for GPUs and TPUs too.
"""

import contextlib
import dataclasses
import functools

import tensorflow as tf
from absl import logging

from bert_adapters.ops import host

# What the run computes on: "auto" asks TensorFlow which devices it sees.
DEVICES = ("auto", "cpu", "accelerator")
# bfloat16 matmuls: "auto" (float32 kernels where they are faster, see
# `float32_faster`), or forced to bfloat16 or float32 kernels.
BF16_MATMULS = ("auto", "bfloat16", "float32")
_ACCELERATORS = ("GPU", "TPU")


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the ops of `bert_adapters.ops` run.

    Every choice keeps Keras' forward values bit for bit, except
    `fast_dropout` (other, equally random masks) and float32 kernels for
    bfloat16 matmuls (the exactly rounded sums, within one bfloat16 step of
    bfloat16 kernels' values: `dense.py`).

    Args:
        fused: hand-written gradients (GELU, attention softmax and dropout)
            and 16-bit GELU tables as XLA-compiled loops; False runs them op
            by op (comparisons and tests).
        compiled_masks: Keras' dropout masks drawn by one compiled Philox
            loop; False draws the same masks with TensorFlow's stock kernels.
        fast_dropout: dropout masks from 16 random bits per element
            (`--fast_dropout`; not Keras' masks).
        bf16_matmuls: one of `BF16_MATMULS` (`--bf16_matmuls`).
        devices: one of `DEVICES`: "cpu", "accelerator" (a GPU or TPU among
            the run's devices), or "auto" (the devices TensorFlow sees).
    """

    fused: bool = True
    compiled_masks: bool = True
    fast_dropout: bool = False
    bf16_matmuls: str = "auto"
    devices: str = "auto"

    def __post_init__(self):
        for field in ("fused", "compiled_masks", "fast_dropout"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"Settings.{field}={getattr(self, field)!r}: expected True "
                                 f"or False")
        if self.bf16_matmuls not in BF16_MATMULS:
            raise ValueError(f"bf16_matmuls={self.bf16_matmuls!r}: expected one of "
                             f"{BF16_MATMULS}")
        if self.devices not in DEVICES:
            raise ValueError(f"devices={self.devices!r}: expected one of {DEVICES}")


_current = Settings()


def current():
    """The `Settings` in force."""
    return _current


@contextlib.contextmanager
def use(settings=None, **changes):
    """Puts `settings` (default: the current ones) with `changes` in force within it.

    Yields the settings in force; the previous ones come back on exit.
    """
    global _current
    fields = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(changes) - fields)
    if unknown:
        raise ValueError(f"unknown op settings {unknown}: expected some of {sorted(fields)}")
    new = dataclasses.replace(settings or _current, **changes)
    previous, _current = _current, new
    try:
        yield new
    finally:
        _current = previous


def devices_of(device_names):
    """`"accelerator"` if any of `device_names` (TensorFlow device strings, e.g. a
    strategy's `extended.worker_devices`) is a GPU or TPU, else `"cpu"`."""
    kinds = {tf.DeviceSpec.from_string(name).device_type for name in device_names}
    return "accelerator" if kinds & set(_ACCELERATORS) else "cpu"


# === The decisions: every op asks one of these ===
def on_accelerator():
    """Whether the run's devices include a GPU or TPU: the CPU devices step aside."""
    devices = _current.devices
    if devices == "auto":
        return any(tf.config.list_logical_devices(kind) for kind in _ACCELERATORS)
    return devices == "accelerator"


def compiled_loops():
    """Whether the hand-written gradients run as XLA loops: `fused`, and XLA compiles here."""
    from bert_adapters.ops import fused  # pylint: disable=import-outside-toplevel  (it imports us)

    return _current.fused and fused.xla_available()


def gelu_tables():
    """Whether a traced 16-bit GELU is one compiled gather from a table of its values."""
    return compiled_loops() and not on_accelerator()


def compiled_bias_adds():
    """Whether a bfloat16 matmul's bias add runs as its own compiled loop, not fused into the
    matmul (`dense._add_bias`: TensorFlow's fused kernel skips AMX on CPUs)."""
    return compiled_loops() and not on_accelerator()


def compiled_dropout():
    """Whether dropout masks are drawn by the compiled Philox loop (for the dtypes it knows)."""
    return _current.compiled_masks and compiled_loops() and not on_accelerator()


def fast_dropout():
    """Whether dropout draws `--fast_dropout`'s 16-bit masks instead of Keras'."""
    return _current.fast_dropout


def integer_bf16():
    """Whether compiled loops convert bfloat16 by integer arithmetic (`fused.widen`)."""
    return not on_accelerator()


def float32_matmuls(dtype):
    """Whether `dense.token_matmul` runs a matmul of `dtype` operands with float32 kernels."""
    choice = _current.bf16_matmuls
    if tf.as_dtype(dtype) != tf.bfloat16 or choice == "bfloat16":
        return False
    return choice == "float32" or (not on_accelerator() and float32_faster())


@functools.cache
def float32_faster():
    """Whether this host's CPU runs bfloat16 matmuls faster through float32 kernels.

    Decided from the CPU's vendor and flags (`/proc/cpuinfo`), not timed, so
    that a run does not depend on the load of the moment: Intel CPUs with
    AVX-512 BF16 but no AMX, where oneDNN's bfloat16 matmul was measured
    slower than its float32 one (docs/performance.md). Everywhere else
    bfloat16 kernels: AMX, AMD Zen 4 and Zen 5, CPUs not measured.
    """
    faster = host.intel_bf16_without_amx()
    if faster:
        logging.info("bfloat16 matmuls run through float32 kernels on this CPU (AVX-512 BF16 "
                     "without AMX); --bf16_matmuls=bfloat16 keeps bfloat16 kernels")
    return faster


def describe():
    """The choices in force, for a run's record (`run_config.json`)."""
    return {"devices": "accelerator" if on_accelerator() else "cpu",
            "compiled_loops": compiled_loops(), "gelu_tables": gelu_tables(),
            "compiled_dropout_masks": compiled_dropout(), "fast_dropout": fast_dropout(),
            "integer_bf16_conversions": integer_bf16(),
            "bf16_matmul_kernels": "float32" if float32_matmuls(tf.bfloat16) else "bfloat16"}
