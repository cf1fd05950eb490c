import numpy as np
import pytest

from bert_adapters.model.adapter import Adapter


@pytest.mark.parametrize("d,m", [(8, 2), (768, 64), (1024, 256)])
def test_parameter_count_is_2md_plus_d_plus_m(d, m):
    layer = Adapter(m)
    layer.build((None, None, d))
    assert layer.count_params() == 2 * m * d + d + m


def test_initialisation_truncated_normal_with_scale_and_zero_biases():
    scale = 1e-2
    layer = Adapter(256, adapter_init_scale=scale)
    layer.build((None, 1024))
    for dense in (layer.down, layer.up):
        kernel = np.asarray(dense.kernel)
        assert np.all(np.abs(kernel) <= 2 * scale + 1e-9)  # truncated at 2 std
        # The std of a normal truncated at +-2 std is 0.88 of the original.
        assert abs(kernel.std() - 0.88 * scale) < 0.05 * scale
        assert abs(kernel.mean()) < 0.05 * scale
        np.testing.assert_array_equal(np.asarray(dense.bias), 0.0)


def test_zero_up_projection_is_identity():
    layer = Adapter(4)
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype("float32")
    layer.build(x.shape)
    layer.up.kernel.assign(np.zeros((4, 8), "float32"))
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


def test_computes_residual_bottleneck_formula():
    layer = Adapter(3, activation="gelu")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5)).astype("float32")
    layer.build(x.shape)
    w1, b1 = rng.standard_normal((5, 3)), rng.standard_normal(3)
    w2, b2 = rng.standard_normal((3, 5)), rng.standard_normal(5)
    layer.down.kernel.assign(w1.astype("float32")); layer.down.bias.assign(b1.astype("float32"))
    layer.up.kernel.assign(w2.astype("float32")); layer.up.bias.assign(b2.astype("float32"))
    from scipy.special import erf
    h = x @ w1 + b1
    expected = x + (0.5 * h * (1 + erf(h / np.sqrt(2)))) @ w2 + b2
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-5, atol=1e-5)


def test_config_round_trip():
    layer = Adapter(16, adapter_init_scale=1e-3, activation="gelu", name="a")
    clone = Adapter.from_config(layer.get_config())
    assert (clone.adapter_size, clone.adapter_init_scale, clone.activation, clone.name) == \
        (16, 1e-3, "gelu", "a")


@pytest.mark.parametrize("kwargs", [dict(adapter_size=0), dict(adapter_size=4, adapter_init_scale=0),
                                    dict(adapter_size=4, activation="relu")])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Adapter(**kwargs)
