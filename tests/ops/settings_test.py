"""The switchboard: its values, its scope, and the CPU devices stepping aside on accelerators.

On a CPU the "accelerator" choice is forced (`devices="accelerator"`); the
last tests run only where a GPU is present (benchmarks/accelerator_check.sh).
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from bert_adapters.ops import activations, dropout, fused, settings
from bert_adapters.ops.dense import TokenDense
from bert_adapters.model.self_attention import SelfAttention

HAS_GPU = bool(tf.config.list_logical_devices("GPU"))


def _compiled_calls(fn, *specs):
    graph = tf.function(fn).get_concrete_function(*specs).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    return [n.name for n in nodes if "Call" in n.op and n.attr["_XlaMustCompile"].b]


def _gelu_and_gradient(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activations.get("gelu_tanh")(x)
    return y, tape.gradient(y, x)


# === Values and scope ===
def test_defaults_validation_and_scope():
    assert settings.current() == settings.Settings()
    with pytest.raises(ValueError, match=r"bf16_matmuls='fp8': expected one of \('auto'"):
        settings.Settings(bf16_matmuls="fp8")
    with pytest.raises(ValueError, match=r"devices='gpu': expected one of \('auto', 'cpu'"):
        settings.Settings(devices="gpu")
    with pytest.raises(ValueError, match=r"Settings.fused=1: expected True or False"):
        settings.Settings(fused=1)
    with pytest.raises(ValueError, match=r"unknown op settings \['fast_masks'\]"):
        with settings.use(fast_masks=True):
            pass
    with settings.use(fast_dropout=True) as outer:
        assert settings.current() is outer and settings.fast_dropout()
        with settings.use(settings.Settings(bf16_matmuls="float32")):
            # A whole Settings replaces every field: fast_dropout is off again.
            assert not settings.fast_dropout() and settings.current().bf16_matmuls == "float32"
        assert settings.current() is outer
        with pytest.raises(RuntimeError):
            with settings.use(fused=False):
                raise RuntimeError("a failing run")
        assert settings.current() is outer
    assert settings.current() == settings.Settings()


def test_devices_of_a_strategys_devices():
    assert settings.devices_of(["/job:localhost/replica:0/task:0/device:CPU:0"]) == "cpu"
    assert settings.devices_of(["/job:worker/replica:0/task:1/device:CPU:0",
                                "/job:worker/replica:0/task:1/device:GPU:0"]) == "accelerator"
    assert settings.devices_of(["/job:worker/replica:0/task:0/device:TPU:3"]) == "accelerator"
    cpu = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert settings.devices_of(cpu.extended.worker_devices) == "cpu"


def test_the_trainer_sets_the_run_s_devices_once():
    from bert_adapters.tasks.classification import ClassifierConfig
    from bert_adapters.training import run_settings

    config = ClassifierConfig(task_name="rte", fast_dropout=True, bf16_matmuls="bfloat16")
    gpu = types.SimpleNamespace(extended=types.SimpleNamespace(
        worker_devices=("/job:localhost/replica:0/task:0/device:GPU:0",)))
    chosen = run_settings.op_settings_for(config, gpu)
    assert chosen == settings.Settings(fast_dropout=True, bf16_matmuls="bfloat16",
                                       devices="accelerator")


# === The decisions ===
@pytest.mark.parametrize("devices", ["cpu", "accelerator"])
def test_every_cpu_device_steps_aside_on_an_accelerator(devices, monkeypatch):
    monkeypatch.setattr(settings, "float32_faster", lambda: True)   # as on the Xeon measured
    on_cpu = devices == "cpu"
    with settings.use(devices=devices):
        assert settings.on_accelerator() is not on_cpu
        assert settings.compiled_loops()          # gradients stay compiled everywhere
        assert settings.gelu_tables() is on_cpu
        assert settings.compiled_dropout() is on_cpu
        assert settings.compiled_bias_adds() is on_cpu
        assert settings.integer_bf16() is on_cpu
        assert settings.float32_matmuls(tf.bfloat16) is on_cpu
        assert settings.describe()["devices"] == devices
        with settings.use(bf16_matmuls="float32"):   # a forced choice is kept
            assert settings.float32_matmuls(tf.bfloat16)
    with settings.use(devices=devices, fused=False):
        assert not (settings.compiled_loops() or settings.gelu_tables()
                    or settings.compiled_dropout() or settings.compiled_bias_adds())


@pytest.mark.parametrize("devices", ["cpu", "accelerator"])
def test_the_ops_follow_the_devices(devices, monkeypatch):
    """What each op traces on a CPU and (forced) on an accelerator; Keras' values either way."""
    monkeypatch.setattr(settings, "float32_faster", lambda: True)
    on_cpu = devices == "cpu"
    x16 = tf.TensorSpec([None, 16], tf.bfloat16)
    with tf.device("/CPU:0"), settings.use(devices=devices):
        # GELU: the gradient loop always; the forward's table gather on CPUs only.
        assert len(_compiled_calls(_gelu_and_gradient, x16)) == (2 if on_cpu else 1)
        # bfloat16 conversions inside the loops: bit shifts on CPUs, casts elsewhere.
        widen_ops = {n.op for n in tf.function(fused.widen).get_concrete_function(
            tf.TensorSpec([4], tf.bfloat16)).graph.as_graph_def().node}
        assert ("LeftShift" in widen_ops) is on_cpu
        # Dropout: compiled masks on CPUs; Keras' kernels elsewhere; Keras' values both.
        layer, theirs = dropout.Dropout(0.1, seed=3), keras.layers.Dropout(0.1, seed=3)
        x = tf.random.stateless_normal((4, 8, 16), [3, 4])
        assert len(_compiled_calls(lambda v: layer(v, training=True), x)) == (2 if on_cpu else 0)
        np.testing.assert_array_equal(layer(x, training=True), theirs(x, training=True))
        # Attention: its fused softmax and dropout on CPUs only (four loops:
        # the bias add, the mask, its scale and select, the backward pass).
        attention = SelfAttention(num_heads=2, attention_dropout=0.3)
        attention.build((None, None, 16))

        def attention_gradient(v):
            with tf.GradientTape() as tape:
                tape.watch(v)
                y = attention(v, attention_bias=tf.zeros([2, 1, 1, 5]), training=True)
            return tape.gradient(y, v)

        assert len(_compiled_calls(attention_gradient, tf.TensorSpec([2, 5, 16]))) == (
            4 if on_cpu else 0)
        # bfloat16 matmuls: float32 kernels under "auto" on the CPUs where faster only.
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            dense = TokenDense(8)
            fn = tf.function(dense).get_concrete_function(tf.TensorSpec([2, 5, 16], tf.bfloat16))
            # With bfloat16 kernels, the bias add is a loop of its own on CPUs only.
            with settings.use(bf16_matmuls="bfloat16"):
                bias_adds = _compiled_calls(dense, tf.TensorSpec([2, 5, 16], tf.bfloat16))
        finally:
            keras.config.set_dtype_policy(previous)
        kernels = [op.get_attr("T") for op in fn.graph.get_operations() if op.type == "MatMul"]
        assert kernels == [tf.float32 if on_cpu else tf.bfloat16]
        assert len(bias_adds) == (1 if on_cpu else 0)


def test_16_bit_gelu_values_are_the_same_with_or_without_the_table():
    x = tf.cast(tf.linspace(-6.0, 6.0, 2001), tf.bfloat16)
    values = {}
    for devices in ("cpu", "accelerator"):
        with tf.device("/CPU:0"), settings.use(devices=devices):
            values[devices] = tf.function(activations.get("gelu"))(x)
    np.testing.assert_array_equal(tf.bitcast(values["cpu"], tf.uint16).numpy(),
                                  tf.bitcast(values["accelerator"], tf.uint16).numpy())


# === On a real GPU (benchmarks/accelerator_check.sh) ===
gpu_only = pytest.mark.skipif(not HAS_GPU, reason="no GPU on this machine")


@gpu_only
def test_a_gpu_is_an_accelerator_and_its_ops_keep_keras_values():
    with tf.device("/GPU:0"):
        assert settings.on_accelerator()
        x16 = tf.TensorSpec([None, 16], tf.bfloat16)
        assert len(_compiled_calls(_gelu_and_gradient, x16)) == 1   # no table on a GPU
        layer, theirs = dropout.Dropout(0.1, seed=3), keras.layers.Dropout(0.1, seed=3)
        x = tf.random.stateless_normal((4, 8, 16), [3, 4])
        np.testing.assert_array_equal(layer(x, training=True), theirs(x, training=True))
        bits = tf.bitcast(tf.constant(np.arange(65536, dtype=np.uint16)), tf.bfloat16)
        np.testing.assert_array_equal(
            tf.bitcast(tf.function(activations.get("gelu_tanh"))(bits), tf.uint16).numpy(),
            tf.bitcast(tf.function(lambda v: keras.activations.gelu(v, approximate=True))(
                bits), tf.uint16).numpy())
