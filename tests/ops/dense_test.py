"""TokenDense's bfloat16 matmuls: bfloat16 kernels and float32 ones against exact sums."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.ops import host, settings
from bert_adapters.ops.dense import TokenDense

pytestmark = pytest.mark.usefixtures("cpu_numerics")


@pytest.fixture
def bf16_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(previous)


def _bf16(values):
    """float32 values of `values` rounded to bfloat16 (as float64, for exact sums)."""
    return tf.cast(tf.cast(tf.constant(values, tf.float32), tf.bfloat16), tf.float64).numpy()


def _ulps(values, reference):
    """|values - reference| in units of bfloat16's last place at the reference."""
    scale = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(reference), 1e-30))) - 7)
    return np.abs(values - reference) / scale


def _layer_and_gradients(x, dy, kernels):
    keras.utils.set_random_seed(3)
    layer = TokenDense(40, bias_initializer="random_normal")
    layer.build(x.shape)
    with settings.use(bf16_matmuls=kernels), tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    dx, dkernel, dbias = tape.gradient(y, [x, layer.kernel, layer.bias], output_gradients=dy)
    return layer, y, dx, dkernel, dbias


@pytest.mark.parametrize("kernels", ["float32", "bfloat16"])
def test_bf16_matmul_outputs_and_gradients_are_the_rounded_exact_sums(bf16_policy, kernels):
    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(size=(3, 11, 96)), tf.bfloat16)
    dy = tf.cast(rng.normal(size=(3, 11, 40)), tf.bfloat16)
    layer, y, dx, dkernel, dbias = _layer_and_gradients(x, dy, kernels)
    assert y.dtype == tf.bfloat16 and dx.dtype == tf.bfloat16 and dkernel.dtype == tf.float32

    # Exact sums (float64) of the bfloat16 operands, rounded once to bfloat16.
    x64, dy64 = _bf16(tf.cast(x, tf.float32)), _bf16(tf.cast(dy, tf.float32))
    k64, b64 = _bf16(layer.kernel.numpy()), _bf16(layer.bias.numpy())
    products = np.einsum("bsi,io->bso", x64, k64)
    # float32 kernels add the bias before their one rounding; TensorFlow's
    # bfloat16 kernels round the product, then the sum with the bias.
    exact_y = _bf16(products + b64) if kernels == "float32" else _bf16(_bf16(products) + b64)
    exact_dx = _bf16(np.einsum("bso,io->bsi", dy64, k64))
    exact_dk = _bf16(np.einsum("bsi,bso->io", x64, dy64))
    checks = [("outputs", y, exact_y), ("input gradients", dx, exact_dx),
              ("kernel gradients", dkernel, exact_dk),
              ("bias gradients", dbias, _bf16(dy64.sum(axis=(0, 1))))]
    for name, got, exact in checks:
        got = tf.cast(got, tf.float64).numpy()
        ulps = _ulps(got, exact)
        # float32 sums differ from exact ones far below bfloat16's step: a
        # value may land one step away only where the exact sum is near a tie.
        assert ulps.max() <= 1.0 + 1e-9, (name, ulps.max())
        if kernels == "float32":
            assert np.mean(ulps == 0) > 0.98, (name, np.mean(ulps == 0))


@pytest.mark.parametrize("kernels", ["float32", "bfloat16"])
def test_bias_gradient_over_many_tokens_is_the_rounded_sum(bf16_policy, kernels):
    # 4096 tokens, as a batch of 32 x 128: summed in bfloat16 (TensorFlow's
    # own bias gradient), sums of size ~40 came out several units off.
    rng = np.random.default_rng(1)
    x = tf.cast(rng.normal(size=(32, 128, 8)), tf.bfloat16)
    dy = tf.cast(rng.normal(size=(32, 128, 40)), tf.bfloat16)
    _, _, _, _, dbias = _layer_and_gradients(x, dy, kernels)
    exact = _bf16(tf.cast(dy, tf.float32)).sum(axis=(0, 1))
    assert _ulps(tf.cast(dbias, tf.float64).numpy(), _bf16(exact)).max() <= 1.0 + 1e-9


def test_float32_kernels_appear_only_for_bfloat16(bf16_policy, monkeypatch):
    monkeypatch.setattr(settings, "float32_faster", lambda: pytest.fail("timed for no reason"))
    with settings.use(bf16_matmuls="auto"):
        assert not settings.float32_matmuls(tf.float32)
        assert not settings.float32_matmuls(tf.float16)
    with settings.use(bf16_matmuls="bfloat16"):
        assert not settings.float32_matmuls(tf.bfloat16)
    with settings.use(bf16_matmuls="float32"):
        assert settings.float32_matmuls(tf.bfloat16)
    for answer in (True, False):
        monkeypatch.setattr(settings, "float32_faster", lambda answer=answer: answer)
        with settings.use(bf16_matmuls="auto"):
            assert settings.float32_matmuls(tf.bfloat16) is answer


@pytest.mark.parametrize("kernels,matmul_dtype", [("float32", tf.float32),
                                                  ("bfloat16", tf.bfloat16)])
def test_the_traced_graph_runs_the_chosen_kernel(bf16_policy, kernels, matmul_dtype):
    layer = TokenDense(8)
    with settings.use(bf16_matmuls=kernels):
        fn = tf.function(layer).get_concrete_function(tf.TensorSpec([2, 5, 16], tf.bfloat16))
    matmuls = [op for op in fn.graph.get_operations() if op.type == "MatMul"]
    assert [op.get_attr("T") for op in matmuls] == [matmul_dtype]
    assert fn.structured_outputs.dtype == tf.bfloat16


@pytest.mark.parametrize("fuse", [True, False])
def test_traced_bf16_outputs_are_the_eager_ones(bf16_policy, fuse):
    """Traced, TensorFlow fuses a matmul with a following BiasAdd into one kernel that
    rounds once (and on AMX CPUs skips AMX); the bias add stays separate where the
    compiled loops run, so a traced step rounds as the eager kernels do."""
    rng = np.random.default_rng(1)
    x = tf.cast(rng.normal(size=(4, 16, 96)), tf.bfloat16)
    keras.utils.set_random_seed(4)
    layer = TokenDense(384, bias_initializer="random_normal")
    layer.build(x.shape)
    with settings.use(bf16_matmuls="bfloat16", fused=fuse):
        eager = layer(x)
        traced = tf.function(layer)(x)
    same = tf.cast(eager, tf.float32).numpy() == tf.cast(traced, tf.float32).numpy()
    if fuse:
        assert same.all()
    else:  # The fused kernel's one rounding: the check above can fail.
        assert not same.all()


def test_an_unknown_choice_is_refused(bf16_policy):
    with pytest.raises(ValueError, match="bf16_matmuls='fp8'.*auto"):
        with settings.use(bf16_matmuls="fp8"):
            TokenDense(8)(tf.zeros([2, 3, 4], tf.bfloat16))


CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
cpu family\t: 6
flags\t\t: fpu sse2 avx2 avx512f {flags}

processor\t: 1
vendor_id\t: {vendor}
"""


@pytest.mark.parametrize("vendor,flags,faster", [
    ("GenuineIntel", "avx512_bf16 avx512_fp16", True),     # the Xeon measured (no AMX)
    ("GenuineIntel", "avx512_bf16 amx_bf16 amx_tile", False),
    ("AuthenticAMD", "avx512_bf16", False),                # Zen 4, Zen 5: bfloat16 faster
    ("GenuineIntel", "avx512_vnni", False),                # not measured: unchanged
])
def test_auto_takes_float32_kernels_on_intel_bf16_without_amx(vendor, flags, faster):
    info = CPUINFO.format(vendor=vendor, flags=flags)
    assert host.intel_bf16_without_amx(info) is faster
    assert host.intel_bf16_without_amx("") is False


def test_auto_decides_once_for_this_host():
    settings.float32_faster.cache_clear()
    first = settings.float32_faster()
    with open("/proc/cpuinfo") as f:
        assert first is host.intel_bf16_without_amx(f.read())
    assert settings.float32_faster() is first
